"""Cone search (HEALPix pre-selection + exact separation) equals brute force with astropy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from indexer.store import IndexedSurvey
from survey.errors import UnknownObject


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def brute(store: IndexedSurvey, ra: float, dec: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(
        SkyCoord(store.catalog["ra"] * u.deg, store.catalog["dec"] * u.deg)).deg
    rows = np.nonzero(sep <= radius)[0]
    return rows, sep


def test_cone_rows_match_brute_force(store: IndexedSurvey) -> None:
    rng = np.random.default_rng(0)
    ra, dec = store.catalog["ra"], store.catalog["dec"]
    centres = [(float(ra[i]), float(dec[i])) for i in rng.choice(len(store), 4, replace=False)]
    centres += [(155.0, 2.5), (150.0, 0.0), (160.3, 5.2)]  # middle, corner, just outside the footprint
    for c_ra, c_dec in centres:
        for radius in (0.05, 0.3, 1.0, 3.0, 20.0):
            rows, sep = store.cone_rows(c_ra, c_dec, radius)
            want, sep_all = brute(store, c_ra, c_dec, radius)
            assert sorted(rows.tolist()) == want.tolist(), (c_ra, c_dec, radius)
            np.testing.assert_allclose(sep, sep_all[rows], atol=1e-9)
            assert np.all(np.diff(sep) >= 0)  # nearest first
            mask = store.cone_mask(c_ra, c_dec, radius)
            assert mask.sum() == len(want) and mask[want].all()


def test_cone_around_an_object_finds_it_first_and_nearest_object(store: IndexedSurvey) -> None:
    i = 17
    ra, dec = float(store.catalog["ra"][i]), float(store.catalog["dec"][i])
    rows, sep = store.cone_rows(ra, dec, 1 / 3600)
    assert rows[0] == i and sep[0] < 1e-6
    row, sep_arcsec = store.nearest_object(ra + 0.5 / 3600, dec)
    assert row == i and sep_arcsec == pytest.approx(0.5 * np.cos(np.radians(dec)), abs=0.01)
    far_row, far_sep = store.nearest_object(0.0, -80.0)  # far from the footprint: still the true nearest
    _, sep_all = brute(store, 0.0, -80.0, 180)
    assert far_row == int(np.argmin(sep_all)) and far_sep == pytest.approx(sep_all.min() * 3600)
    rng = np.random.default_rng(1)  # in the footprint, around it, and anywhere on the sky
    for ra_q, dec_q in zip(rng.uniform(148, 162, 20).tolist() + rng.uniform(0, 360, 10).tolist(),
                           rng.uniform(-2, 7, 20).tolist() + rng.uniform(-90, 90, 10).tolist(), strict=True):
        _, sep_all = brute(store, ra_q, dec_q, 180)
        row, sep_arcsec = store.nearest_object(ra_q, dec_q)
        assert sep_all[row] == pytest.approx(sep_all.min(), abs=1e-9), (ra_q, dec_q)
        assert sep_arcsec == pytest.approx(sep_all.min() * 3600, abs=1e-6)


def test_nearest_object_without_any_position_is_unknown_object(tiny_artifacts: Path) -> None:
    store = IndexedSurvey.open_current(tiny_artifacts)  # a copy of its own: the flags are changed
    store.has_position[:] = False  # as a survey ingested without ra/dec
    with pytest.raises(UnknownObject, match="known position"):
        store.nearest_object(155.0, 2.5)
