"""A query parameter a route does not declare is refused (422 naming it and the accepted ones) on
every operation of the OpenAPI document; the IVOA cone search and the page ignore unknown ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings

DOC = create_app(ServiceSettings(artifacts=Path("/nonexistent"), watch_interval_s=0)).openapi()
OPERATIONS = sorted((path, method) for path, item in DOC["paths"].items() for method in item
                    if "x-unknown-query-parameters" not in item[method])
KNOWN = {"object_id": "sim-0000042", "row": "42"}


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    votes = tmp_path_factory.mktemp("query") / "votes.sqlite"
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0,
                                               admin_token="t")), raise_server_exceptions=False) as c:
        yield c


def concrete(path: str) -> str:
    for name, value in KNOWN.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_an_unknown_query_parameter_is_a_422_naming_it_and_the_accepted_ones(client: TestClient, path: str,
                                                                              method: str) -> None:
    declared = sorted(p["name"] for p in DOC["paths"][path][method].get("parameters", []) if p["in"] == "query")
    r = client.request(method.upper(), concrete(path), params={"zmax": "0.1"}, headers={"Authorization": "Bearer t"})
    assert r.status_code == 422, (path, method, r.status_code, r.text)
    body = r.json()
    assert body["error"] == "invalid_parameter" and "unknown query parameter 'zmax'" in body["detail"], body
    assert all(name in body["detail"] for name in declared), (declared, body["detail"])


def test_a_misspelt_filter_gets_a_suggestion_not_the_unfiltered_answer(client: TestClient) -> None:
    r = client.get("/api/v1/objects/sim-0000042/similar", params={"zmax": "0.1"})
    assert r.status_code == 422 and "did you mean 'z_max'?" in r.json()["detail"]
    assert "takes dec, format, k, mag_max, ra, radius, z_max, z_min" in r.json()["detail"]


def test_declared_parameters_still_pass(client: TestClient) -> None:
    r = client.get("/api/v1/objects/sim-0000042/similar", params={"k": 3, "z_max": 5, "format": "json"})
    assert r.status_code == 200, r.text


def test_the_cone_search_and_the_page_ignore_unknown_parameters(client: TestClient) -> None:
    r = client.get("/api/v1/conesearch", params={"RA": 155, "DEC": 2.5, "SR": 1, "RUNID": "topcat-1"})
    assert r.status_code == 200 and b'name="Error"' not in r.content
    assert client.get("/", params={"q": "sim-0000042", "k": 12}).status_code == 200
