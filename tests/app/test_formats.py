"""?format=json|csv|votable: the converters, and the same rows in every format of a list endpoint."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io.votable import parse, parse_single_table
from fastapi.testclient import TestClient

from app.formats import csv_bytes, votable_bytes
from app.main import create_app
from app.settings import ServiceSettings

ROWS = [
    {"object_id": "a-1", "ra": 10.5, "dec": -3.25, "n": 3, "flag": True, "kind": "spiral, barred", "score": None},
    {"object_id": "b-2", "ra": 359.9, "dec": 89.0, "n": None, "flag": False, "kind": "élliptical", "score": 0.5},
    {"object_id": "c-3", "ra": 0.0, "dec": 0.0, "n": 7, "flag": True, "kind": None, "score": float("nan")},
]
COLS = ["object_id", "ra", "dec", "n", "flag", "kind", "score"]


def test_csv_has_a_header_and_empty_fields_for_missing_values() -> None:
    text = csv_bytes(ROWS, COLS).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLS and len(rows) == 3
    assert rows[0]["kind"] == "spiral, barred", "a comma inside a value must be quoted, not split"
    assert rows[0]["score"] == "" and rows[2]["score"] == "", "None and NaN are empty fields"
    assert rows[1]["n"] == "" and rows[1]["kind"] == "élliptical"
    assert float(rows[1]["ra"]) == 359.9 and int(rows[2]["n"]) == 7


def test_votable_round_trips_types_and_missing_values() -> None:
    body = votable_bytes(ROWS, COLS, infos={"total": 3})
    vot = parse(io.BytesIO(body), verify="exception")  # no VOTable spec warnings either
    fields = {f.name: f for f in vot.get_first_table().fields}
    assert fields["object_id"].datatype == "char" and fields["object_id"].ucd == "meta.id;meta.main"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main" and fields["ra"].unit == "deg"
    assert fields["dec"].ucd == "pos.eq.dec;meta.main"
    assert fields["n"].datatype == "long" and fields["flag"].datatype in ("boolean", "bit")
    assert fields["kind"].datatype == "unicodeChar", "non-ASCII text needs unicodeChar"
    assert [i.value for i in vot.resources[0].infos if i.name == "total"] == ["3"]
    t = vot.get_first_table().to_table()
    assert list(t["object_id"]) == ["a-1", "b-2", "c-3"]
    assert t["n"].mask.tolist() == [False, True, False] and t["n"][2] == 7
    assert t["score"].mask.tolist() == [True, False, True] and t["score"][1] == 0.5
    assert t["kind"][1] == "élliptical"


def test_votable_of_no_rows_still_declares_typed_columns() -> None:
    body = votable_bytes([], ["object_id", "ra", "rank"], kinds={"ra": "float", "rank": "int"})
    table = parse_single_table(io.BytesIO(body))
    assert [f.datatype for f in table.fields] == ["char", "double", "long"]
    assert len(table.array) == 0


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    votes = tmp_path_factory.mktemp("formats") / "votes.sqlite"
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0))) as c:
        yield c


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(0, 0.01, (3, 64, 64)).astype(np.float32))
    return buf.getvalue()


# (method, path, request keyword arguments, key of the rows in the JSON answer)
LISTS = [("GET", "/api/v1/objects/sim-0000042/similar", {"params": {"k": 9}}, "neighbours"),
         ("GET", "/api/v1/rankings/anomalies", {"params": {"limit": 25, "offset": 5}}, "items"),
         ("GET", "/api/v1/votes", {"params": {}}, "items"),
         ("GET", "/api/v1/search/position", {"params": {"ra": "10:02:00", "dec": "2.5", "match_radius_arcsec": 3600,
                                                        "k": 7}}, "neighbours"),
         ("POST", "/api/v1/search/examples", {"params": {}, "json": {"positive": ["sim-0000042", "sim-0000107"],
                                                                     "negative": ["sim-0000003"], "k": 6}},
          "neighbours"),
         ("POST", "/api/v1/search/cutout", {"params": {}, "files": {"file": ("c.npy", _npy())}, "data": {"k": "5"}},
          "neighbours")]


@pytest.mark.parametrize(("method", "path", "request_args", "key"), LISTS, ids=[p for _, p, _, _ in LISTS])
def test_every_list_answers_the_same_rows_in_csv_and_votable(client: TestClient, method: str, path: str,
                                                             request_args: dict, key: str) -> None:
    if "votes" in path:
        for body in ({"label": "lens"}, {"label": "boring"}, {"label": "relevance", "score": 3}):  # score: null, 3
            assert client.post("/api/v1/votes", json={"object_id": "sim-0000001", **body}).status_code == 201

    def send(fmt: str | None):  # type: ignore[no-untyped-def]
        params = {**request_args["params"], **({"format": fmt} if fmt else {})}
        return client.request(method, path, **{**request_args, "params": params})

    js = send(None)
    assert js.status_code == 200 and js.headers["content-type"] == "application/json", js.text
    rows = js.json()[key]
    assert rows

    c = send("csv")
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv"), c.text
    csv_rows = list(csv.DictReader(io.StringIO(c.text)))
    assert [r["object_id"] for r in csv_rows] == [r["object_id"] for r in rows]
    assert set(rows[0]) <= set(csv_rows[0]), "csv has every json column"

    v = send("votable")
    assert v.status_code == 200 and v.headers["content-type"] == "application/x-votable+xml", v.text
    table = parse_single_table(io.BytesIO(v.content)).to_table()
    assert list(table["object_id"]) == [r["object_id"] for r in rows]
    for name in ("ra", "dec", "distance", "score", "rank"):
        if name in rows[0]:
            for cell, r in zip(table[name], rows, strict=True):  # a JSON null is a masked cell
                if r[name] is None:
                    assert np.ma.is_masked(cell), (name, cell)
                else:
                    assert math.isclose(float(cell), r[name], rel_tol=1e-12, abs_tol=1e-12), (name, cell, r[name])


@pytest.mark.parametrize("bad", ["xml", "JSON", "", "fits"])
def test_unknown_format_is_a_422_naming_format(client: TestClient, bad: str) -> None:
    for method, path, request_args, _ in LISTS:
        r = client.request(method, path, **{**request_args, "params": {**request_args["params"], "format": bad}})
        assert r.status_code == 422, (path, bad)
        assert r.json()["error"] == "invalid_parameter" and "format" in r.json()["detail"]


def test_openapi_documents_the_three_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/api/v1/objects/{object_id}/similar", "get"), ("/api/v1/rankings/anomalies", "get"),
                         ("/api/v1/rankings/lenses", "get"), ("/api/v1/votes", "get"),
                         ("/api/v1/search/position", "get"), ("/api/v1/search/examples", "post"),
                         ("/api/v1/search/cutout", "post")):
        content = paths[path][method]["responses"]["200"]["content"]
        assert {"application/json", "text/csv", "application/x-votable+xml"} <= set(content), path
        fmt = next(p for p in paths[path][method]["parameters"] if p["name"] == "format")
        assert fmt["schema"]["enum"] == ["json", "csv", "votable"]
