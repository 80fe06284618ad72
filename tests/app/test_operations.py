"""Operations: the access log line of every request, and the settings-from-environment factory
that each `skysift serve --workers N` process calls."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app, create_app_from_env
from app.settings import ServiceSettings

LINE = re.compile(r"^(GET|POST) (\S+) (\d{3}) (\d+\.\d)ms$")


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
