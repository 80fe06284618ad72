"""Objects of unknown position (ra/dec NaN: an image folder ingested without a catalogue) are
indexed and served: null ra/dec in JSON, empty cells in CSV/VOTable, in no cone, never the
nearest object to a position, and a FITS cutout without a celestial WCS."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings
from indexer.store import Filters, IndexedSurvey

N_UNPLACED = 10  # the first rows of the tiny survey lose their position


@pytest.fixture(scope="module")
def unplaced(tiny_survey: Path, tiny_encoder: Path, backend: str,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings

    survey = tmp_path_factory.mktemp("unplaced") / "survey"
    shutil.copytree(tiny_survey, survey)
    with h5py.File(sorted(survey.glob("shard-*.h5"))[0], "r+") as f:
        for key in ("ra", "dec"):
            values = f[key][()]
            values[:N_UNPLACED] = np.nan
            f[key][...] = values
        ids = list(f["object_id"].asstr()[:N_UNPLACED])
    root = tmp_path_factory.mktemp("unplaced_artifacts")
    index_survey(IndexSettings(survey=survey, encoder=tiny_encoder, artifacts=root, job="unplaced", device="cpu",
                               shard_size=64, recall_sample=100, map_method="pca"))
    return root, ids


@pytest.fixture(scope="module")
def store(unplaced: tuple[Path, list]) -> IndexedSurvey:
    return IndexedSurvey.open_current(unplaced[0])


@pytest.fixture(scope="module")
def client(unplaced: tuple[Path, list]) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=unplaced[0], watch_interval_s=0)),
                    raise_server_exceptions=False) as c:
        yield c


def test_index_gives_unknown_positions_no_healpix_and_no_cone(store: IndexedSurvey, unplaced: tuple) -> None:
    ids = set(unplaced[1])
    rows = np.arange(N_UNPLACED)
    assert np.isnan(store.catalog["ra"][rows]).all() and (store.catalog["healpix"][rows] == -1).all()
    assert (store.catalog["healpix"][N_UNPLACED:] >= 0).all()
    placed = ~np.isnan(store.catalog["ra"])
    ra, dec = float(np.median(store.catalog["ra"][placed])), float(np.median(store.catalog["dec"][placed]))
    for radius in (1.0, 10.0, 90.0, 180.0):  # 90 and 180 deg take the every-row path
        hits, sep = store.cone_rows(ra, dec, radius)
        assert len(hits) and not ids & {str(store.catalog["object_id"][r]) for r in hits}
        assert np.isfinite(sep).all()
    row, sep = store.nearest_object(0.0, -80.0)  # far away: the nearest object with a position
    assert row >= N_UNPLACED and np.isfinite(sep)
    hits = store.similar(unplaced[1][0], 20, Filters(ra_deg=ra, dec_deg=dec, radius_deg=90.0))
    assert hits and not ids & {h.object_id for h in hits}


def test_object_and_similar_answer_null_positions(client: TestClient, unplaced: tuple) -> None:
    oid = unplaced[1][0]
    r = client.get(f"/api/v1/objects/{oid}")
    assert r.status_code == 200, r.text
    assert r.json()["ra"] is None and r.json()["dec"] is None
    r = client.get(f"/api/v1/objects/{oid}/similar", params={"k": 12})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["object_id"] == oid and body["query"]["ra"] is None and body["query"]["dec"] is None
    assert len(body["neighbours"]) == 12
    r = client.get(f"/api/v1/objects/{oid}/similar", params={"k": 12, "format": "csv"})
    assert r.status_code == 200 and r.text.splitlines()[1].split(",")[:3] == [oid, "", ""]
    r = client.get(f"/api/v1/objects/{oid}/similar", params={"k": 12, "format": "votable"})
    assert r.status_code == 200
    table = parse_single_table(io.BytesIO(r.content)).to_table()
    assert table["object_id"][0] == oid and table["ra"].mask[0] and table["dec"].mask[0]


def test_cone_search_position_search_map_and_fits_skip_or_carry_unknown_positions(
        client: TestClient, store: IndexedSurvey, unplaced: tuple) -> None:
    ids = set(unplaced[1])
    placed = ~np.isnan(store.catalog["ra"])
    ra, dec = float(np.median(store.catalog["ra"][placed])), float(np.median(store.catalog["dec"][placed]))
    r = client.get("/api/v1/conesearch", params={"RA": ra, "DEC": dec, "SR": 10})
    assert r.status_code == 200
    found = [str(v) for v in parse_single_table(io.BytesIO(r.content)).to_table()["object_id"]]
    assert len(found) == int(placed.sum()) and not ids & set(found)

    row = N_UNPLACED + 3
    rec = store.record(row)
    r = client.get("/api/v1/search/position", params={"ra": rec["ra"], "dec": rec["dec"], "k": 5})
    assert r.status_code == 200, r.text
    assert r.json()["matched"]["object_id"] == rec["object_id"]
    r = client.get("/api/v1/search/position", params={"ra": 0.0, "dec": -80.0})
    assert r.status_code == 404 and r.json()["error"] == "no_object_in_radius"
    assert not any(i in r.json()["detail"] for i in ids)

    r = client.get("/api/v1/map/points/0")
    assert r.status_code == 200, r.text
    assert r.json()["ra"] is None and r.json()["object_id"] == unplaced[1][0]

    oid = unplaced[1][0]
    r = client.get(f"/api/v1/cutouts/{oid}.fits")
    assert r.status_code == 200, r.text
    header = fits.open(io.BytesIO(r.content))[0].header
    assert "CRVAL1" not in header and header["OBJECT"] == oid and "position unknown" in str(header["COMMENT"])


def test_version_footprint_places_only_positioned_objects(client: TestClient, store: IndexedSurvey) -> None:
    fp = client.get("/api/v1/version").json()["footprint"]
    placed = store.has_position
    assert fp["n_positioned"] == len(store) - N_UNPLACED == int(placed.sum())
    ra, dec = np.asarray(store.catalog["ra"])[placed], np.asarray(store.catalog["dec"])[placed]
    assert (fp["ra_min_deg"], fp["ra_max_deg"]) == (ra.min(), ra.max())  # a patch away from RA 0
    assert (fp["dec_min_deg"], fp["dec_max_deg"]) == (dec.min(), dec.max())
    assert 0 < fp["box_area_deg2"] <= (ra.max() - ra.min()) * (dec.max() - dec.min())
