"""Every error is the JSON {"error", "detail"} of docs/api.md, including unexpected ones, and every
request carries an id (X-Request-ID) that the access log and the error log name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings


@pytest.fixture(scope="module")
def app(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    votes = tmp_path_factory.mktemp("errors") / "votes.sqlite"
    app = create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0))

    @app.get("/test/boom")
    def boom() -> None:  # a bug in a route: what the client and the log see
        raise RuntimeError("the secret internals")

    return app


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_an_unexpected_error_is_a_json_500_naming_the_request_id(client: TestClient,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        r = client.get("/test/boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == "internal_error"
    rid = r.headers["x-request-id"]
    assert rid in body["detail"] and "secret internals" not in body["detail"]
    logged = [rec for rec in caplog.records if rec.name == "skysift.errors"]
    assert len(logged) == 1 and rid in logged[0].getMessage() and "the secret internals" in logged[0].getMessage()
    assert logged[0].exc_info is not None, "the traceback is in the log"
    access = [rec.getMessage() for rec in caplog.records if rec.name == "skysift.access"]
    assert any(m.startswith("GET /test/boom 500 ") and m.endswith(f"id={rid}") for m in access), access


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/objects/nope", "/no/such/route"])
def test_every_answer_carries_a_request_id(client: TestClient, path: str) -> None:
    a, b = client.get(path), client.get(path)
    assert len(a.headers["x-request-id"]) >= 16 and a.headers["x-request-id"] != b.headers["x-request-id"]


def test_a_clients_plain_request_id_is_kept_and_a_forged_one_replaced(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123.x"}).headers["x-request-id"] == "abc-123.x"
    forged = client.get("/healthz", headers={"X-Request-ID": "a b\tfake log line"}).headers["x-request-id"]
    assert " " not in forged and "fake" not in forged
