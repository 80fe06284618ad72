"""HTTP methods: a 405 names every method of the resource in Allow (RFC 9110 §15.5.6), and HEAD
is answered like GET without a body (RFC 9110 §9.3.2), for every route of the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings

DOC = create_app(ServiceSettings(artifacts=Path("/nonexistent"), watch_interval_s=0)).openapi()
KNOWN = {"object_id": "sim-0000042", "row": "42"}  # the tiny survey has these
PROBES = ("GET", "PUT", "POST", "DELETE", "PATCH", "TRACE")
PATHS = sorted(DOC["paths"])


@pytest.fixture(scope="module")
def client(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    votes = tmp_path_factory.mktemp("methods") / "votes.sqlite"
    with TestClient(create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0)),
                    raise_server_exceptions=False) as c:
        yield c


def concrete(path: str) -> str:
    for name, value in KNOWN.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.mark.parametrize("path", PATHS)
def test_an_undeclared_method_is_405_with_every_declared_method_in_allow(client: TestClient, path: str) -> None:
    declared = {m.upper() for m in DOC["paths"][path]}
    expected = declared | ({"HEAD"} if "GET" in declared else set())
    for method in sorted(set(PROBES) - declared):
        r = client.request(method, concrete(path))
        assert r.status_code == 405, (method, path, r.status_code, r.text)
        assert set(r.json()) == {"error", "detail"} and r.json()["error"] == "method_not_allowed"
        assert {m.strip() for m in r.headers["allow"].split(",")} == expected, (method, path, r.headers["allow"])


def test_get_and_post_on_one_path_are_both_in_allow(client: TestClient) -> None:
    """Starlette's own Allow named only the first route matching the path (GET /votes hid POST)."""
    r = client.delete("/api/v1/votes")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/v1/objects/sim-0000042", "/api/v1/cutouts/sim-0000042.png",
                                  "/api/v1/rankings/anomalies?format=csv", "/static/app.js"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200, (path, head.status_code, head.text)
    assert head.content == b""
    for header in ("content-type", "content-length"):
        assert head.headers.get(header) == get.headers.get(header), header


def test_head_of_a_post_only_route_is_405(client: TestClient) -> None:
    r = client.head("/api/v1/search/examples")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.content == b""
