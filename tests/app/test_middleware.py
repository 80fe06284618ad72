"""app/middleware.py: every request body is bounded (a declared Content-Length over the limit is
refused before a byte is read; a chunked body as soon as it passes the limit), with the upload
route's own larger limit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import uploads
from app.main import create_app
from app.settings import ServiceSettings

MAX_BODY = 64 * 1024
MAX_UPLOAD = 256 * 1024
EXAMPLES = "/api/v1/search/examples"


@pytest.fixture(scope="module")
def app(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    votes = tmp_path_factory.mktemp("bodies") / "votes.sqlite"
    return create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=votes, watch_interval_s=0,
                                      max_body_bytes=MAX_BODY, max_upload_bytes=MAX_UPLOAD))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def call(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]], chunk: bytes,
         n_chunks: int) -> tuple[int, dict, int]:
    """POST n_chunks x `chunk` at the ASGI level (TestClient would buffer the whole body first);
    returns (status, json body, chunks the app pulled)."""
    pulled, sent = 0, []

    async def receive() -> dict:
        nonlocal pulled
        if pulled >= n_chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < n_chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("test", 1), "server": ("test", 80)}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the main thread may hold Playwright's loop
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


JSON = [(b"content-type", b"application/json")]


@pytest.mark.parametrize("path", [EXAMPLES, "/api/v1/votes"])
def test_a_declared_content_length_over_the_limit_is_refused_before_reading(app: FastAPI, path: str) -> None:
    status, body, pulled = call(app, path, [*JSON, (b"content-length", str(10**12).encode())], b" " * 65536, 1000)
    assert (status, body["error"]) == (413, "body_too_large"), body
    assert "1000000000000 bytes" in body["detail"] and f"limit of {MAX_BODY}" in body["detail"]
    assert pulled == 0


def test_a_chunked_json_body_is_cut_off_once_over_the_limit(app: FastAPI) -> None:
    chunk = b" " * 16384  # 100 MB offered (whitespace is valid JSON padding), no Content-Length
    status, body, pulled = call(app, EXAMPLES, JSON, chunk, 6400)
    assert (status, body["error"]) == (413, "body_too_large"), body
    assert pulled <= MAX_BODY // len(chunk) + 1, f"read {pulled} chunks of an unbounded body"


def test_a_json_body_under_the_limit_is_read(client: TestClient) -> None:
    payload = json.dumps({"positive": ["sim-0000042"], "k": 3}) + " " * (MAX_BODY - 100)
    r = client.post(EXAMPLES, content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_the_upload_route_has_its_own_larger_limit(app: FastAPI, client: TestClient) -> None:
    """A multipart body between the JSON limit and the upload limit reaches the upload route."""
    r = client.post("/api/v1/search/cutout", files={"file": ("c.npy", b"\x93NUMPY" + b"\0" * (2 * MAX_BODY))})
    assert r.status_code == 422 and r.json()["error"] != "body_too_large", r.text
    limit = uploads.body_limit(MAX_UPLOAD)
    status, body, pulled = call(app, "/api/v1/search/cutout", [(b"content-type", b"multipart/form-data; boundary=x"),
                                                               (b"content-length", str(limit + 1).encode())],
                                b"\0", 10)
    assert (status, body["error"], pulled) == (413, "upload_too_large", 0)
