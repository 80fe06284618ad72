"""IVOA Simple Cone Search 1.03 at GET /api/v1/conesearch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings
from indexer.store import IndexedSurvey

URL = "/api/v1/conesearch"


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path) -> TestClient:
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0))) as c:
        yield c


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


def votable(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == "text/xml"
    return parse(io.BytesIO(r.content), verify="exception")


def error_of(vot) -> str | None:  # type: ignore[no-untyped-def]
    infos = [i for i in vot.infos if i.name == "Error"] + [i for res in vot.resources for i in res.infos
                                                            if i.name == "Error"]
    return infos[0].value if infos else None


def test_cone_returns_exactly_the_objects_within_sr_nearest_first(client: TestClient, store: IndexedSurvey) -> None:
    ra, dec, sr = 155.0, 2.5, 1.5
    vot = votable(client.get(URL, params={"RA": ra, "DEC": dec, "SR": sr}))
    assert error_of(vot) is None
    assert len(vot.resources) == 1 and len(vot.resources[0].tables) == 1, "SCS: one RESOURCE with one TABLE"
    t = vot.get_first_table().to_table()
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(store.catalog["ra"] * u.deg,
                                                                store.catalog["dec"] * u.deg)).deg
    expected = set(np.asarray(store.catalog["object_id"])[sep <= sr].tolist())
    assert len(expected) > 5
    assert set(t["object_id"].tolist()) == expected
    assert np.all(np.diff(np.asarray(t["separation_deg"])) >= 0), "nearest first"
    row = store.row_of(str(t["object_id"][0]))
    assert t["ra"][0] == store.catalog["ra"][row] and t["dec"][0] == store.catalog["dec"][row]


def test_required_ucds_appear_once_each_with_the_right_types(client: TestClient) -> None:
    for verb in ("1", "2", "3"):
        vot = votable(client.get(URL, params={"RA": 155, "DEC": 2.5, "SR": 1, "VERB": verb}))
        assert vot.version in ("1.0", "1.1")  # SCS 1.03 asks for a VOTable 1.0/1.1 document
        fields = vot.get_first_table().fields
        ucds = [f.ucd for f in fields]
        for ucd in ("ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"):
            assert ucds.count(ucd) == 1, (verb, ucd)
        by_ucd = {f.ucd: f for f in fields}
        assert by_ucd["ID_MAIN"].datatype == "char" and by_ucd["ID_MAIN"].name == "object_id"
        assert by_ucd["POS_EQ_RA_MAIN"].datatype == "double" and by_ucd["POS_EQ_DEC_MAIN"].datatype == "double"


def test_verb_chooses_the_columns(client: TestClient, store: IndexedSurvey) -> None:
    names = {v: [f.name for f in votable(client.get(URL, params={"RA": 155, "DEC": 2.5, "SR": 1, "VERB": v}))
                 .get_first_table().fields] for v in ("1", "2", "3")}
    assert names["1"] == ["object_id", "ra", "dec"]
    assert {"separation_deg", "z", "mag_r", "anomaly_score", "lens_score"} <= set(names["2"])
    assert set(store.catalog.names) - {"healpix"} <= set(names["3"])
    plain = votable(client.get(URL, params={"RA": 155, "DEC": 2.5, "SR": 1}))
    default = [f.name for f in plain.get_first_table().fields]
    assert default == names["2"], "no VERB means VERB=2"


def test_sr_zero_is_the_metadata_query(client: TestClient) -> None:
    vot = votable(client.get(URL, params={"RA": 0, "DEC": 90, "SR": 0}))
    assert error_of(vot) is None
    table = vot.get_first_table()
    assert len(table.array) == 0
    assert [f.ucd for f in table.fields][:3] == ["ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"]


def test_an_empty_region_is_an_empty_table_not_an_error(client: TestClient) -> None:
    vot = votable(client.get(URL, params={"RA": 10, "DEC": -60, "SR": 1}))
    assert error_of(vot) is None and len(vot.get_first_table().array) == 0


def test_parameter_names_are_case_insensitive(client: TestClient) -> None:
    upper = votable(client.get(URL, params={"RA": 155, "DEC": 2.5, "SR": 1})).get_first_table().to_table()
    lower = votable(client.get(URL, params={"ra": 155, "Dec": 2.5, "sr": 1})).get_first_table().to_table()
    assert upper["object_id"].tolist() == lower["object_id"].tolist()


@pytest.mark.parametrize(("params", "words"), [
    ({"DEC": 2.5, "SR": 1}, "missing required parameter RA"),
    ({"RA": 155, "SR": 1}, "missing required parameter DEC"),
    ({"RA": 155, "DEC": 2.5}, "missing required parameter SR"),
    ({"RA": "as3f", "DEC": 2.5, "SR": 1}, "RA='as3f' is not a number"),
    ({"RA": 155, "DEC": 91, "SR": 1}, "DEC=91 is out of range"),
    ({"RA": 361, "DEC": 0, "SR": 1}, "RA=361 is out of range"),
    ({"RA": 155, "DEC": 2.5, "SR": -0.1}, "SR=-0.1 is out of range"),
    ({"RA": 155, "DEC": 2.5, "SR": 11}, "SR=11 is out of range [0, 10]"),
    ({"RA": "nan", "DEC": 2.5, "SR": 1}, "RA=nan is out of range"),
    ({"RA": 155, "DEC": 2.5, "SR": 1, "VERB": "loud"}, "VERB='loud' is not 1, 2 or 3"),
])
def test_errors_are_a_votable_with_an_error_info_and_http_200(client: TestClient, params: dict, words: str) -> None:
    vot = votable(client.get(URL, params=params))
    assert words in (error_of(vot) or ""), error_of(vot)
    assert [i.name for i in vot.infos] == ["Error"], "INFO name=Error as a child of VOTABLE (preferred by SCS)"
    assert not vot.resources


def test_a_repeated_parameter_is_an_error(client: TestClient) -> None:
    vot = votable(client.get(URL + "?RA=1&RA=2&DEC=0&SR=1"))
    assert "RA must be given once" in error_of(vot)


def infos(vot) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {i.name: i.value for i in vot.resources[0].infos}


CONE = {"RA": 155, "DEC": 2.5, "SR": 3}


def test_maxrec_caps_the_answer_nearest_kept_with_overflow_and_pages_with_offset(client: TestClient) -> None:
    full_vot = votable(client.get(URL, params=CONE))
    full = full_vot.get_first_table().to_table()["object_id"].tolist()
    assert len(full) > 12 and infos(full_vot)["QUERY_STATUS"] == "OK"
    assert infos(full_vot)["rows_in_cone"] == str(len(full))
    pages, offset = [], 0
    while True:
        vot = votable(client.get(URL, params={**CONE, "MAXREC": 5, "OFFSET": offset}))
        page = vot.get_first_table().to_table()["object_id"].tolist()
        pages += page
        if infos(vot)["QUERY_STATUS"] != "OVERFLOW":
            break
        assert len(page) == 5 and infos(vot)["next_offset"] == str(offset + 5)
        offset = int(infos(vot)["next_offset"])
    assert pages == full, "the pages, in order, are the whole nearest-first answer"


def test_maxrec_above_the_services_ceiling_is_lowered_to_it(tiny_artifacts: Path) -> None:
    """ServiceSettings.max_cone_records is the most rows any answer holds (was a fixed 50,000)."""
    app = create_app(ServiceSettings(artifacts=tiny_artifacts, watch_interval_s=0, max_cone_records=7))
    with TestClient(app) as c:
        for params in (CONE, {**CONE, "MAXREC": 10**9}):
            vot = votable(c.get(URL, params=params))
            assert len(vot.get_first_table().to_table()) == 7
            assert infos(vot)["QUERY_STATUS"] == "OVERFLOW" and infos(vot)["max_records"] == "7"


def test_maxrec_zero_is_the_metadata_with_the_overflow_flag(client: TestClient) -> None:
    vot = votable(client.get(URL, params={**CONE, "MAXREC": 0}))
    assert len(vot.get_first_table().to_table()) == 0 and infos(vot)["QUERY_STATUS"] == "OVERFLOW"


@pytest.mark.parametrize(("params", "words"), [({"MAXREC": "lots"}, "MAXREC='lots' is not a whole number"),
                                               ({"MAXREC": -1}, "MAXREC=-1 is negative"),
                                               ({"OFFSET": "1.5"}, "OFFSET='1.5' is not a whole number")])
def test_bad_maxrec_or_offset_is_an_error_votable(client: TestClient, params: dict, words: str) -> None:
    assert words in error_of(votable(client.get(URL, params={**CONE, **params})))


def test_conesearch_is_in_the_openapi_document_as_xml(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"][URL]["get"]
    assert {p["name"] for p in op["parameters"]} == {"RA", "DEC", "SR", "VERB", "MAXREC", "OFFSET"}
    assert "text/xml" in op["responses"]["200"]["content"]
