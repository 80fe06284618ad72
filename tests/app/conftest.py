"""Fixtures of the explorer's browser tests: a real uvicorn server on the tiny published version
(127.0.0.1, a free port, in a thread), and Debian's chromium driven by pytest-playwright.

`playwright install` cannot download browsers here, so pytest-playwright is pointed at the
system chromium (DESIGN.md §6). A missing chromium fails the tests with a message saying how to
install it; it never skips them (`make test` installs it).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("SKYSIFT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1200, "height": 800}
MISSING_CHROMIUM = (f"chromium not found at {CHROMIUM}: the explorer's browser tests drive Debian's chromium "
                    "(install it with `apt-get install -y chromium`, which `make test` does; `playwright install` "
                    "cannot download browsers here; SKYSIFT_CHROMIUM=/path overrides the location)")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)


@pytest.fixture(scope="session")
def chromium_problem() -> str | None:
    """None when chromium is there, else what to do about it (a plain test asserts on it, so a
    missing browser shows as FAILED, not only as errors at setup)."""
    return None if CHROMIUM.exists() else MISSING_CHROMIUM


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    require_chromium()
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": VIEWPORT, "device_scale_factor": 1}


class LiveServer:
    """uvicorn serving `app` on an already-bound socket (so the port is known and cannot be taken)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name="uvicorn-test")

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


BACKEND_ENV = ("SKYSIFT_BACKEND", "SKYSIFT_INDEX_BACKEND", "SKYSIFT_INDEX_MILVUS_URI")


@pytest.fixture(scope="module", params=["faiss", "milvus"])
def backend(request: pytest.FixtureRequest, milvus_uri: str) -> Iterator[str]:
    """Every API test that serves a version runs on both vector engines: FAISS in the process and
    Milvus (Lite, embedded). Each module runs once per engine; for its duration the environment
    names the engine, as a deployment's would, so every `ServiceSettings` a test builds serves
    from it and every version a test indexes is also a collection."""
    before = {k: os.environ.get(k) for k in BACKEND_ENV}
    os.environ.update({"SKYSIFT_BACKEND": request.param, "SKYSIFT_INDEX_BACKEND": request.param,
                       "SKYSIFT_INDEX_MILVUS_URI": milvus_uri})
    yield request.param
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tiny_artifacts(published_tiny: Path, backend: str) -> Path:
    """The tiny version, served by `backend` in this module (it has a FAISS index and a collection)."""
    return published_tiny


@pytest.fixture(scope="session")
def live_server(published_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a uvicorn server on the tiny version, with its own votes file (the explorer's
    browser tests: FAISS; the API tests cover both engines)."""
    from app.main import create_app
    from app.settings import ServiceSettings

    votes = tmp_path_factory.mktemp("browser") / "votes.sqlite"
    app = create_app(ServiceSettings(artifacts=published_tiny, votes_db=votes, watch_interval_s=0, backend="faiss"))
    with LiveServer(app) as server:
        yield server.url


@pytest.fixture(scope="session")
def base_url(live_server: str) -> str:
    """pytest-playwright resolves page.goto("/...") against this."""
    return live_server
