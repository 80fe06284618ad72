"""Operations: the access log line of every request, and the settings-from-environment factory
that each `skysift serve --workers N` process calls."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app, create_app_from_env
from app.settings import ServiceSettings

LINE = re.compile(r"^(GET|POST) (\S+) (\d{3}) (\d+\.\d)ms id=[0-9a-f]{32}$")


def test_access_log_names_method_path_status_and_latency(tiny_artifacts: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(ServiceSettings(artifacts=tiny_artifacts, votes_db=tmp_path / "v.sqlite", watch_interval_s=0))
    with TestClient(app) as client, caplog.at_level(logging.INFO, logger="skysift.access"):
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/v1/objects/no-such-object/similar").status_code == 404
    lines = [LINE.match(r.getMessage()) for r in caplog.records if r.name == "skysift.access"]
    assert all(lines), [r.getMessage() for r in caplog.records]
    seen = [(m.group(1), m.group(2), int(m.group(3))) for m in lines if m]
    assert ("GET", "/healthz", 200) in seen
    assert ("GET", "/api/v1/objects/no-such-object/similar", 404) in seen
    assert all(float(m.group(4)) >= 0 for m in lines if m)


def test_worker_factory_reads_settings_from_the_environment(tiny_artifacts: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "art"
    shutil.copytree(tiny_artifacts, root, symlinks=True, ignore=shutil.ignore_patterns("building", "votes.sqlite*"))
    monkeypatch.setenv("SKYSIFT_ARTIFACTS", str(root))
    monkeypatch.setenv("SKYSIFT_MAX_K", "7")
    monkeypatch.setenv("SKYSIFT_WATCH_INTERVAL_S", "0")
    app = create_app_from_env()
    assert app.state.settings.artifacts == root and app.state.settings.max_k == 7
    with TestClient(app) as client:
        some_id = client.get("/api/v1/rankings/anomalies?limit=1").json()["items"][0]["object_id"]
        assert client.get(f"/api/v1/objects/{some_id}/similar?k=7").status_code == 200
        r = client.get(f"/api/v1/objects/{some_id}/similar?k=8")
        assert r.status_code == 422 and "limit of 7" in r.json()["detail"]


def test_serve_with_two_workers_answers_and_logs_each_request(published_tiny: Path, tmp_path: Path) -> None:
    """`skysift serve --workers 2`: each worker process rebuilds the settings from the environment
    and sets up its own logging, so requests are answered and access-logged. On FAISS only: what is
    tested is how settings reach the worker processes, the same for either engine (each engine's
    answers are tested by every other test here), and two worker processes cost ~25 s to start."""
    root = tmp_path / "art"
    shutil.copytree(published_tiny, root, symlinks=True, ignore=shutil.ignore_patterns("building", "votes.sqlite*"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SKYSIFT_WATCH_INTERVAL_S": "0", "SKYSIFT_MAX_K": "9", "SKYSIFT_BACKEND": "faiss"}
    proc = subprocess.Popen([sys.executable, "-m", "skysift.cli", "serve", "--artifacts", str(root), "--port",
                             str(port), "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "two workers not ready in 180 s"
            time.sleep(0.5)
        some_id = httpx.get(f"{url}/api/v1/rankings/anomalies?limit=1").json()["items"][0]["object_id"]
        ok = httpx.get(f"{url}/api/v1/objects/{some_id}/similar?k=9")
        too_many = httpx.get(f"{url}/api/v1/objects/{some_id}/similar?k=10")
        assert ok.status_code == 200 and ok.json()["neighbours"][0]["object_id"] == some_id
        assert too_many.status_code == 422, "SKYSIFT_MAX_K reached the worker processes"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    line = rf"skysift\.access GET /api/v1/objects/{re.escape(some_id)}/similar 200 \d+\.\dms"
    assert re.search(line, err), err[-2000:]
