"""Filtered similarity search equals exact cosine brute force on the filtered subset, on both the
exact-subset path and the index over-fetch path, and returns k hits whenever k objects pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

import indexer.store as store_mod
from indexer.store import Filters, IndexedSurvey


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def unit_vectors(store: IndexedSurvey) -> np.ndarray:
    v = np.asarray(store.embeddings, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def brute_force(store: IndexedSurvey, q: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, distances) of the k most cosine-similar rows among mask, nearest first."""
    rows = np.nonzero(mask)[0]
    dist = 1.0 - unit_vectors(store)[rows] @ q
    order = np.argsort(dist, kind="stable")[:k]
    return rows[order], dist[order]


def assert_same_hits(hits: list, rows: np.ndarray, dist: np.ndarray) -> None:
    """Same rows in the same order, except that rows whose distances tie (to float32 rounding)
    may swap places."""
    got_rows = np.array([h.row for h in hits])
    got_dist = np.array([h.distance for h in hits])
    assert len(got_rows) == len(rows)
    np.testing.assert_allclose(got_dist, dist, atol=2e-5)
    if not np.array_equal(got_rows, rows):
        for i in np.nonzero(got_rows != rows)[0]:  # only near-ties may differ
            assert abs(got_dist[i] - dist[i]) < 2e-5 and got_rows[i] in rows, (got_rows, rows)
    assert set(got_rows.tolist()) == set(rows.tolist()) or np.ptp(dist[-2:]) < 2e-5


def queries(store: IndexedSurvey, n: int = 6) -> list[np.ndarray]:
    rows = np.linspace(0, len(store) - 1, n).astype(int)
    return [store.vector(int(r)) for r in rows]


def test_redshift_window_excluding_most_objects_still_gives_k_inside(store: IndexedSurvey) -> None:
    z = np.asarray(store.catalog["z"], dtype=float)
    lo, hi = np.quantile(z, [0.40, 0.55])  # ~15 % of the survey passes
    f = Filters(z_min=float(lo), z_max=float(hi))
    mask = (z >= lo) & (z <= hi)
    assert 15 <= mask.sum() <= 0.25 * len(store)
    k = 10
    for q in queries(store):
        hits = store.search_vector(q, k, f)
        assert len(hits) == k
        assert all(lo <= z[h.row] <= hi for h in hits)
        assert_same_hits(hits, *brute_force(store, q, mask, k))


def test_magnitude_limit(store: IndexedSurvey) -> None:
    mag = np.asarray(store.catalog["mag_r"], dtype=float)
    limit = float(np.quantile(mag, 0.2))
    mask = mag <= limit
    for q in queries(store):
        hits = store.search_vector(q, 8, Filters(mag_max=limit))
        assert len(hits) == 8 and all(mag[h.row] <= limit for h in hits)
        assert_same_hits(hits, *brute_force(store, q, mask, 8))


def test_sky_region(store: IndexedSurvey) -> None:
    ra, dec = store.catalog["ra"], store.catalog["dec"]
    centre = (float(np.median(ra)), float(np.median(dec)))
    radius = 1.5
    sep = SkyCoord(centre[0] * u.deg, centre[1] * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    mask = sep <= radius
    assert 10 <= mask.sum() < len(store) // 2
    f = Filters(ra_deg=centre[0], dec_deg=centre[1], radius_deg=radius)
    for q in queries(store):
        hits = store.search_vector(q, 10, f)
        assert len(hits) == 10 and all(mask[h.row] for h in hits)
        assert_same_hits(hits, *brute_force(store, q, mask, 10))


def test_combined_filters_and_exclude(store: IndexedSurvey) -> None:
    z, mag = np.asarray(store.catalog["z"], float), np.asarray(store.catalog["mag_r"], float)
    f = Filters(z_max=float(np.median(z)), mag_max=float(np.quantile(mag, 0.7)))
    mask = (z <= f.z_max) & (mag <= f.mag_max)
    q = store.vector(3)
    first = store.search_vector(q, 5, f)
    exclude = {first[0].row, first[2].row}
    hits = store.search_vector(q, 5, f, exclude=exclude)
    mask_ex = mask.copy()
    mask_ex[list(exclude)] = False
    assert_same_hits(hits, *brute_force(store, q, mask_ex, 5))


@pytest.mark.parametrize("exact_subset_max", [0, 5])
def test_overfetch_path_equals_brute_force_on_an_exact_index(store: IndexedSurvey, exact_subset_max: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert store.spec.factory == "Flat"  # the tiny survey gets an exact index
    monkeypatch.setattr(store_mod, "EXACT_SUBSET_MAX", exact_subset_max)
    calls = []
    original = store_mod.index_types.search
    monkeypatch.setattr(store_mod.index_types, "search", lambda *a: calls.append(a[2]) or original(*a))
    z = np.asarray(store.catalog["z"], dtype=float)
    lo, hi = np.quantile(z, [0.3, 0.45])
    mask = (z >= lo) & (z <= hi)
    for q in queries(store):
        hits = store.search_vector(q, 10, Filters(z_min=float(lo), z_max=float(hi)))
        assert len(hits) == 10 and all(mask[h.row] for h in hits)
        assert_same_hits(hits, *brute_force(store, q, mask, 10))
    assert calls, "the over-fetch path must have searched the index"
    assert max(calls) > 10  # it fetched more than k to survive the filter


def test_overfetch_falls_back_to_exact_scan_when_the_index_runs_dry(store: IndexedSurvey,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An approximate index may return fewer hits than asked (IVF lists not probed): simulate one
    that only ever returns 20 and check the filtered answer is still complete and exact."""
    monkeypatch.setattr(store_mod, "EXACT_SUBSET_MAX", 0)
    original = store_mod.index_types.search

    def stingy(index, q, k):
        dist, ids = original(index, q, k)
        dist[:, 20:], ids[:, 20:] = np.inf, -1
        return dist, ids

    monkeypatch.setattr(store_mod.index_types, "search", stingy)
    z = np.asarray(store.catalog["z"], dtype=float)
    mask = z >= np.quantile(z, 0.9)
    q = store.vector(0)
    hits = store.search_vector(q, 10, Filters(z_min=float(np.quantile(z, 0.9))))
    assert_same_hits(hits, *brute_force(store, q, mask, 10))


@pytest.mark.parametrize("exact_subset_max", [0, 200_000])
def test_fewer_than_k_pass_returns_all_that_pass(store: IndexedSurvey, exact_subset_max: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "EXACT_SUBSET_MAX", exact_subset_max)
    z = np.asarray(store.catalog["z"], dtype=float)
    order = np.sort(z)
    lo, hi = float(order[100]), float(order[104])  # exactly 5 objects (z values are continuous)
    mask = (z >= lo) & (z <= hi)
    assert mask.sum() == 5
    hits = store.search_vector(store.vector(0), 20, Filters(z_min=lo, z_max=hi))
    assert sorted(h.row for h in hits) == sorted(np.nonzero(mask)[0].tolist())
    d = [h.distance for h in hits]
    assert d == sorted(d)
    assert store.search_vector(store.vector(0), 5, Filters(z_min=5.0, z_max=6.0)) == []


def test_unfiltered_search_and_similar_start_with_the_object(store: IndexedSurvey) -> None:
    oid = str(store.catalog["object_id"][7])
    hits = store.similar(oid, 6)
    assert hits[0].object_id == oid and hits[0].distance == pytest.approx(0.0, abs=2e-3)
    q = store.vector(7)
    assert_same_hits(store.search_vector(q, 6), *brute_force(store, q, np.ones(len(store), bool), 6))
