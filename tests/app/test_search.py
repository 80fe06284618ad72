"""Search by position, by an uploaded cutout and by examples; the FITS cutout route."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings
from indexer.store import IndexedSurvey

ROW = 42  # an ordinary object of the tiny survey


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0)),
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def obj(store: IndexedSurvey, row: int = ROW) -> dict:
    return store.record(row)


def ids(body: dict) -> list[str]:
    return [n["object_id"] for n in body["neighbours"]]


# ---- position


def test_position_in_degrees_finds_the_object_and_its_neighbours(client: TestClient, store: IndexedSurvey) -> None:
    rec = obj(store)
    r = client.get("/api/v1/search/position", params={"ra": rec["ra"], "dec": rec["dec"], "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"version", "k", "query", "neighbours", "matched"}
    assert body["query"]["object_id"] == rec["object_id"] == body["matched"]["object_id"]
    assert body["matched"]["separation_arcsec"] == pytest.approx(0.0, abs=1e-3)
    assert body["matched"]["match_radius_arcsec"] == 3.0
    assert len(body["neighbours"]) == 5 and ids(body)[0] == rec["object_id"]
    similar = client.get(f"/api/v1/objects/{rec['object_id']}/similar", params={"k": 5}).json()
    assert ids(body) == ids(similar), "same neighbours as /objects/{id}/similar"


@pytest.mark.parametrize("style", ["colon", "spaces", "letters"])
def test_position_in_sexagesimal_finds_the_object(client: TestClient, store: IndexedSurvey, style: str) -> None:
    rec = obj(store)
    ra_h, dec_d = Angle(rec["ra"], u.deg), Angle(rec["dec"], u.deg)
    if style == "letters":
        ra, dec = ra_h.to_string(u.hourangle, precision=4), dec_d.to_string(u.deg, precision=3, alwayssign=True)
    else:
        sep = ":" if style == "colon" else " "
        ra = ra_h.to_string(u.hourangle, sep=sep, precision=4)
        dec = dec_d.to_string(u.deg, sep=sep, precision=3, alwayssign=True)
    r = client.get("/api/v1/search/position", params={"ra": ra, "dec": dec, "k": 3})
    assert r.status_code == 200, (ra, dec, r.text)
    body = r.json()
    assert body["matched"]["object_id"] == rec["object_id"]
    assert body["matched"]["separation_arcsec"] < 0.05
    assert body["matched"]["ra"] == pytest.approx(rec["ra"], abs=1e-5)


def test_position_off_by_two_arcsec_still_matches(client: TestClient, store: IndexedSurvey) -> None:
    rec = obj(store)
    off = SkyCoord(rec["ra"] * u.deg, rec["dec"] * u.deg).directional_offset_by(0 * u.deg, 2 * u.arcsec)
    r = client.get("/api/v1/search/position", params={"ra": off.ra.deg, "dec": off.dec.deg, "k": 2})
    assert r.status_code == 200 and r.json()["matched"]["separation_arcsec"] == pytest.approx(2.0, abs=0.01)
    r = client.get("/api/v1/search/position", params={"ra": off.ra.deg, "dec": off.dec.deg,
                                                      "match_radius_arcsec": 1.0})
    assert r.status_code == 404 and r.json()["error"] == "no_object_in_radius"
    assert rec["object_id"] in r.json()["detail"] and "2.0 arcsec away" in r.json()["detail"]


def test_far_position_is_404_with_the_nearest_distance(client: TestClient, store: IndexedSurvey) -> None:
    r = client.get("/api/v1/search/position", params={"ra": "22:00:00", "dec": "-60:00:00"})
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "no_object_in_radius"
    cat = SkyCoord(store.catalog["ra"] * u.deg, store.catalog["dec"] * u.deg)
    sep = SkyCoord(330 * u.deg, -60 * u.deg).separation(cat)
    nearest = int(np.argmin(sep))
    assert str(store.catalog["object_id"][nearest]) in body["detail"]
    assert f"is {sep[nearest].arcsec:.1f} arcsec ({sep[nearest].deg:.3f} deg) away" in body["detail"]


@pytest.mark.parametrize("params, word", [
    ({"ra": "400", "dec": "0"}, "ra="), ({"ra": "-1", "dec": "0"}, "ra="), ({"ra": "360", "dec": "0"}, "ra="),
    ({"ra": "25:00:00", "dec": "0"}, "ra="), ({"ra": "10", "dec": "95"}, "dec="),
    ({"ra": "10", "dec": "-90:30:00"}, "dec="), ({"ra": "ten", "dec": "0"}, "ra="), ({"ra": "10", "dec": "2h"}, "dec="),
    ({"ra": "nan", "dec": "0"}, "ra="), ({"ra": "10:99:00", "dec": "0"}, "ra="), ({"dec": "0"}, "ra"),
    ({"ra": "10", "dec": "0", "match_radius_arcsec": "0"}, "match_radius_arcsec"),
    ({"ra": "10", "dec": "0", "k": "0"}, "k"),
    ({"ra": "10", "dec": "0", "k": "100000"}, "k: Input should be less than or equal to 500"),
    ({"ra": "10", "dec": "0", "z_min": "0.5", "z_max": "0.1"}, "z_min"),
])
def test_bad_position_parameters_are_422_naming_them(client: TestClient, params: dict, word: str) -> None:
    r = client.get("/api/v1/search/position", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_parameter" and word in r.json()["detail"]


def test_position_search_applies_filters(client: TestClient, store: IndexedSurvey) -> None:
    rec = obj(store)
    r = client.get("/api/v1/search/position", params={"ra": rec["ra"], "dec": rec["dec"], "k": 10, "z_max": 0.2})
    assert r.status_code == 200
    assert all(n["z"] <= 0.2 for n in r.json()["neighbours"])


# ---- uploaded cutouts of a survey object


def fits_of(store: IndexedSurvey, row: int) -> bytes:
    """The object's own pixels written by the test with a TAN WCS and band names."""
    rec, pixels = store.record(row), store.images([row])[0]
    _, h, w = pixels.shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [rec["ra"], rec["dec"]]
    wcs.wcs.crpix = [(w + 1) / 2, (h + 1) / 2]
    wcs.wcs.cdelt = [-store.pixel_scale_arcsec / 3600, store.pixel_scale_arcsec / 3600]
    hdr = wcs.to_header()
    for i, b in enumerate(store.bands):
        hdr[f"BAND{i + 1}"] = b
    buf = io.BytesIO()
    fits.PrimaryHDU(pixels.astype(">f4"), header=hdr).writeto(buf)  # big-endian, as FITS stores it
    return buf.getvalue()


def test_fits_upload_of_an_object_finds_it_first(client: TestClient, store: IndexedSurvey) -> None:
    rec = obj(store)
    r = client.post("/api/v1/search/cutout", files={"file": ("mine.fits", fits_of(store, ROW), "application/fits")},
                    data={"k": "5"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"version", "k", "query", "neighbours"} and body["k"] == 5 and len(body["neighbours"]) == 5
    q = body["query"]
    assert q["format"] == "fits" and q["filename"] == "mine.fits" and q["shape"] == [3, 64, 64]
    assert q["pixel_scale_source"] == "wcs" and q["pixel_scale_arcsec"] == pytest.approx(0.262)
    assert q["bands"] == ["g", "r", "z"] and q["flux"] == "linear" and q["notes"] == []
    assert q["ra"] == pytest.approx(rec["ra"]) and q["dec"] == pytest.approx(rec["dec"])
    assert body["neighbours"][0]["object_id"] == rec["object_id"]
    assert body["neighbours"][0]["distance"] == pytest.approx(0.0, abs=1e-3)


def test_npy_upload_of_an_object_finds_it_first(client: TestClient, store: IndexedSurvey) -> None:
    buf = io.BytesIO()
    np.save(buf, store.images([ROW])[0])
    r = client.post("/api/v1/search/cutout", files={"file": ("mine.npy", buf.getvalue())}, data={"k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert ids(body)[0] == obj(store)["object_id"] and body["neighbours"][0]["distance"] == pytest.approx(0, abs=1e-3)
    assert body["query"]["pixel_scale_source"] == "assumed"
    assert any("assumed the model's 0.262" in n for n in body["query"]["notes"])


def test_fits_upload_in_another_band_order_is_reordered(client: TestClient, store: IndexedSurvey) -> None:
    pixels = store.images([ROW])[0][::-1]  # z, r, g
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ascontiguousarray(pixels), header=fits.Header([("BANDS", "z,r,g"), ("PIXSCALE", 0.262)])
                    ).writeto(buf)
    r = client.post("/api/v1/search/cutout", files={"file": ("zrg.fits", buf.getvalue())}, data={"k": "1"})
    assert r.status_code == 200, r.text
    assert ids(r.json()) == [obj(store)["object_id"]]
    assert r.json()["query"]["pixel_scale_source"] == "header"
    assert any("reordered" in n for n in r.json()["query"]["notes"])


def test_fits_upload_at_a_finer_scale_is_resampled(client: TestClient, store: IndexedSurvey) -> None:
    from survey.readers.resize import resample

    fine = resample(store.images([ROW])[0], 0.262, 0.131)
    buf = io.BytesIO()
    hdr = fits.Header([("BANDS", "g,r,z")])
    fits.PrimaryHDU(fine, header=hdr).writeto(buf)
    r = client.post("/api/v1/search/cutout", files={"file": ("fine.fits", buf.getvalue())},
                    data={"pixel_scale_arcsec": "0.131", "k": "240"})
    assert r.status_code == 200, r.text
    q = r.json()["query"]
    assert q["pixel_scale_source"] == "field" and q["shape"] == [3, 128, 128]
    assert any("resampled from 0.131 to 0.262" in n for n in q["notes"])
    assert len(r.json()["neighbours"]) == 240


def test_png_upload_is_searched_as_a_display_image(client: TestClient, store: IndexedSurvey) -> None:
    png = client.get(f"/api/v1/cutouts/{obj(store)['object_id']}.png").content
    r = client.post("/api/v1/search/cutout", files={"file": ("mine.png", png, "image/png")},
                    data={"k": "4", "pixel_scale_arcsec": "0.262"})
    assert r.status_code == 200, r.text
    q = r.json()["query"]
    assert q["format"] == "png" and q["flux"] == "display" and q["pixel_scale_source"] == "field"
    assert any("R,G,B taken as bands z,r,g" in n for n in q["notes"])
    assert len(r.json()["neighbours"]) == 4


def test_upload_search_applies_filters(client: TestClient, store: IndexedSurvey) -> None:
    r = client.post("/api/v1/search/cutout", files={"file": ("mine.fits", fits_of(store, ROW))},
                    data={"k": "8", "z_min": "0.2", "mag_max": "19"})
    assert r.status_code == 200, r.text
    assert all(n["z"] >= 0.2 and n["mag_r"] <= 19 for n in r.json()["neighbours"])


# ---- examples


def test_examples_exclude_the_examples_and_return_k(client: TestClient, store: IndexedSurvey) -> None:
    pos = [str(store.catalog["object_id"][i]) for i in (ROW, 43, 44)]
    neg = [str(store.catalog["object_id"][i]) for i in (3, 4)]
    r = client.post("/api/v1/search/examples", json={"positive": pos, "negative": neg, "k": 9})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["k"] == 9 and len(body["neighbours"]) == 9
    assert not set(ids(body)) & set(pos + neg)
    assert body["query"] == {"positive": pos, "negative": neg, "negative_weight": 0.5}
    d = [n["distance"] for n in body["neighbours"]]
    assert d == sorted(d)


def test_examples_query_is_the_documented_vector(client: TestClient, store: IndexedSurvey) -> None:
    pos_rows, neg_rows = [ROW, 50], [60]
    q = np.mean([store.vector(i) for i in pos_rows], axis=0) - 0.5 * store.vector(neg_rows[0])
    q /= np.linalg.norm(q)
    expected = [h.object_id for h in store.search_vector(q, 5, exclude=set(pos_rows + neg_rows))]
    r = client.post("/api/v1/search/examples", json={
        "positive": [str(store.catalog["object_id"][i]) for i in pos_rows],
        "negative": [str(store.catalog["object_id"][i]) for i in neg_rows], "k": 5})
    assert ids(r.json()) == expected


def test_examples_with_only_positives(client: TestClient, store: IndexedSurvey) -> None:
    oid = obj(store)["object_id"]
    r = client.post("/api/v1/search/examples", json={"positive": [oid]})
    assert r.status_code == 200 and len(r.json()["neighbours"]) == 12 and oid not in ids(r.json())
    similar = client.get(f"/api/v1/objects/{oid}/similar", params={"k": 13}).json()
    assert ids(r.json()) == [i for i in ids(similar) if i != oid][:12]


@pytest.mark.parametrize("payload, status, code, word", [
    ({"positive": ["nope-1"]}, 404, "unknown_object", "'nope-1'"),
    ({"positive": ["sim-0000001"], "negative": ["ghost"]}, 404, "unknown_object", "'ghost'"),
    ({"positive": []}, 422, "invalid_parameter", "positive"),
    ({"negative": ["sim-0000001"]}, 422, "invalid_parameter", "positive"),
    ({"positive": ["sim-0000001"], "negative": ["sim-0000001"]}, 422, "invalid_parameter", "both"),
    ({"positive": ["sim-0000001"], "k": 0}, 422, "invalid_parameter", "k"),
    ({"positive": ["sim-0000001"], "k": 100000}, 422, "invalid_parameter", "less than or equal to 500"),
    ({"positive": ["sim-0000001"], "mag_max": False}, 422, "invalid_parameter", "mag_max"),  # was taken as 0
    ({"positive": ["sim-0000001"], "z_max": "0.3"}, 422, "invalid_parameter", "z_max"),
    ({"positive": ["sim-0000001"], "k": True}, 422, "invalid_parameter", "k"),
    ({"positive": [""], "negative": [""]}, 422, "invalid_parameter", "positive.0: String should have at least 1"),
    ({"positive": ["x" * 257]}, 422, "invalid_parameter", "positive.0: String should have at most 256"),
    ({"positive": ["sim-0000001", "sim-0000002"], "negative": ["sim-0000002", "sim-0000001"]}, 422,
     "invalid_parameter", "'sim-0000001', 'sim-0000002' are both a positive and a negative example"),
    ({"positive": ["sim-0000001"], "colour": "red"}, 422, "invalid_parameter", "colour"),
    ({"positive": "sim-0000001"}, 422, "invalid_parameter", "positive"),
])
def test_bad_examples_are_refused_naming_the_problem(client: TestClient, payload: dict, status: int, code: str,
                                                     word: str) -> None:
    r = client.post("/api/v1/search/examples", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and word in r.json()["detail"]


# ---- FITS cutout


def test_fits_cutout_round_trips(client: TestClient, store: IndexedSurvey) -> None:
    rec = obj(store)
    r = client.get(f"/api/v1/cutouts/{rec['object_id']}.fits")
    assert r.status_code == 200 and r.headers["content-type"] == "application/fits"
    with fits.open(io.BytesIO(r.content)) as hdul:
        hdu = hdul[0]
        np.testing.assert_array_equal(hdu.data, store.images([ROW])[0])
        h = hdu.header
        assert hdu.data.shape == (3, 64, 64) and h["OBJECT"] == rec["object_id"]
        assert [h["BAND1"], h["BAND2"], h["BAND3"]] == list(store.bands) and h["BANDS"] == "g,r,z"
        assert h["BUNIT"] == "nanomaggies"
        wcs = WCS(h).celestial
        centre = wcs.pixel_to_world((64 - 1) / 2, (64 - 1) / 2)
        assert centre.separation(SkyCoord(rec["ra"] * u.deg, rec["dec"] * u.deg)).arcsec < 1e-6
        np.testing.assert_allclose(proj_plane_pixel_scales(wcs) * 3600, [0.262, 0.262])
        east = wcs.pixel_to_world(0, (64 - 1) / 2)  # column 0 lies east of the centre (RA larger)
        assert east.ra.deg > rec["ra"]


def test_fits_cutout_feeds_back_into_upload_search(client: TestClient, store: IndexedSurvey) -> None:
    oid = obj(store)["object_id"]
    data = client.get(f"/api/v1/cutouts/{oid}.fits").content
    r = client.post("/api/v1/search/cutout", files={"file": (f"{oid}.fits", data)}, data={"k": "1"})
    assert r.status_code == 200 and ids(r.json()) == [oid]


def test_cutout_routes_take_ids_with_slashes(client: TestClient) -> None:
    for ext in ("fits", "png"):
        r = client.get(f"/api/v1/cutouts/9010/331234/5678.{ext}")
        assert r.status_code == 404, r.text
        assert r.json() == {"error": "unknown_object", "detail": "no object with id '9010/331234/5678' in this survey"}


# ---- OpenAPI


def test_search_routes_are_documented_with_errors_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    pos = paths["/api/v1/search/position"]["get"]
    assert {"404", "422", "503"} <= set(pos["responses"])
    assert {p["name"] for p in pos["parameters"]} >= {"ra", "dec", "match_radius_arcsec", "k", "z_min", "z_max",
                                                      "mag_max"}
    assert "examples" in next(p for p in pos["parameters"] if p["name"] == "ra")
    up = paths["/api/v1/search/cutout"]["post"]
    assert {"409", "413", "415", "422", "503"} <= set(up["responses"])
    form = up["requestBody"]["content"]["multipart/form-data"]
    assert form["schema"]["required"] == ["file"] and form["schema"]["properties"]["file"]["format"] == "binary"
    assert {"pixel_scale_arcsec", "bands", "k", "z_min", "z_max", "mag_max"} <= set(form["schema"]["properties"])
    ex = paths["/api/v1/search/examples"]["post"]
    assert {"404", "422", "503"} <= set(ex["responses"])
    for op in (pos, up, ex):
        for code in ("404", "413", "422"):
            if code in op["responses"]:
                assert op["responses"][code]["content"]["application/json"]["examples"]
    fits_route = paths["/api/v1/cutouts/{object_id}.fits"]["get"]
    assert "application/fits" in fits_route["responses"]["200"]["content"]


def test_every_search_without_k_answers_the_services_default_k(tiny_artifacts: Path, store: IndexedSurvey) -> None:
    """/similar used to hard-code 12; it follows default_k like the other searches (one place checks k)."""
    oid = str(store.catalog["object_id"][3])
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0, default_k=5))) as c:
        similar = c.get(f"/api/v1/objects/{oid}/similar").json()
        examples = c.post("/api/v1/search/examples", json={"positive": [oid]}).json()
        too_many = c.get(f"/api/v1/objects/{oid}/similar", params={"k": 13}).status_code
    assert len(similar["neighbours"]) == 5 and len(examples["neighbours"]) == 5
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0, max_k=12))) as c:
        r = c.get(f"/api/v1/objects/{oid}/similar", params={"k": 13})
    assert r.status_code == 422 and "above the limit of 12" in r.json()["detail"]
    assert too_many == 200
