"""POST /api/v1/admin/reload: bearer token, swap to the newly published version, failures named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import ServiceSettings
from indexer.artifacts import current_version, point_current

URL = "/api/v1/admin/reload"
TOKEN = "s3cret-token"


def copy_artifacts(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("building", "votes.sqlite*"))
    return dest


def clone_version(root: Path, suffix: str) -> str:
    """A second complete version: same files, another name (cheaper than a rebuild)."""
    old = current_version(root)
    new = f"{old}-{suffix}"
    shutil.copytree(root / "versions" / old, root / "versions" / new)
    manifest_path = root / "versions" / new / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = new
    manifest_path.write_text(json.dumps(manifest))
    return new


@pytest.fixture()
def root(tiny_artifacts: Path, tmp_path: Path) -> Path:
    return copy_artifacts(tiny_artifacts, tmp_path / "artifacts")


def client_for(root: Path, token: str | None) -> TestClient:
    return TestClient(create_app(ServiceSettings(artifacts=root, votes_db=root / "votes.sqlite", watch_interval_s=0,
                                                 admin_token=token)))


@pytest.mark.parametrize(("headers", "words"), [
    ({}, "missing"),
    ({"Authorization": "Bearer wrong"}, "wrong admin token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "wrong admin token"),
    ({"Authorization": f"Basic {TOKEN}"}, "missing"),
    ({"Authorization": TOKEN}, "missing"),
])
def test_missing_or_wrong_token_is_401(root: Path, headers: dict, words: str) -> None:
    with client_for(root, TOKEN) as c:
        r = c.post(URL, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized" and words in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_no_configured_token_disables_reload(root: Path) -> None:
    with client_for(root, None) as c:
        for headers in ({}, {"Authorization": "Bearer anything"}, {"Authorization": "Bearer "}):
            r = c.post(URL, headers=headers)
            assert r.status_code == 401 and "disabled" in r.json()["detail"]
    with client_for(root, "") as c:
        assert c.post(URL, headers={"Authorization": "Bearer "}).status_code == 401


def test_reload_swaps_to_the_new_current_and_says_so(root: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with client_for(root, TOKEN) as c:
        v1 = c.get("/api/v1/version").json()["version"]
        assert c.post(URL, headers=auth).json() == {"version": v1, "changed": False, "previous": v1}
        v2 = clone_version(root, "b")
        point_current(root, v2)
        assert c.get("/api/v1/version").json()["version"] == v1, "watcher off: nothing changes by itself"
        assert c.post(URL, headers=auth).json() == {"version": v2, "changed": True, "previous": v1}
        assert c.get("/api/v1/version").json()["version"] == v2
        assert c.get("/api/v1/objects/sim-0000042/similar").json()["version"] == v2
        point_current(root, v1)  # a rollback is a reload too
        assert c.post(URL, headers=auth).json() == {"version": v1, "changed": True, "previous": v2}


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(root: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with client_for(root, TOKEN) as c:
        v1 = c.get("/api/v1/version").json()["version"]
        broken = clone_version(root, "broken")
        (root / "versions" / broken / "catalog.parquet").unlink()
        point_current(root, broken)
        r = c.post(URL, headers=auth)
        assert r.status_code == 409 and r.json()["error"] == "reload_failed"
        assert "catalog.parquet" in r.json()["detail"] and v1 in r.json()["detail"]
        assert c.get("/api/v1/version").json()["version"] == v1
        assert c.get("/api/v1/rankings/anomalies", params={"limit": 1}).status_code == 200


def test_nothing_published_is_503(tmp_path: Path) -> None:
    with client_for(tmp_path, TOKEN) as c:
        r = c.post(URL, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 503 and r.json()["error"] == "no_index"
