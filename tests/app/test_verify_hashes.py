"""The service serves a version only if its files match the sha256 in its manifest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import indexer.artifacts
from app.holder import IndexHolder
from app.main import create_app
from app.settings import ServiceSettings
from indexer.artifacts import read_manifest
from indexer.errors import CorruptVersion


def _copy(tiny_artifacts: Path, dest: Path) -> Path:
    shutil.copytree(tiny_artifacts, dest, symlinks=True)
    assert (dest / "current").resolve().is_relative_to(dest)  # never corrupt the shared fixture
    return dest


def _corrupt_one_byte(version_dir: Path) -> str:
    """Flip one byte in the middle of the largest file the manifest lists (size unchanged)."""
    files = read_manifest(version_dir)["files"]
    rel = max(files, key=lambda r: files[r]["bytes"])
    path = version_dir / rel
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return rel


def test_a_corrupt_version_is_refused_with_503_naming_the_file(tiny_artifacts: Path, tmp_path: Path) -> None:
    root = _copy(tiny_artifacts, tmp_path / "artifacts")
    rel = _corrupt_one_byte((root / "current").resolve())
    with TestClient(create_app(ServiceSettings(artifacts=root, watch_interval_s=0))) as c:
        r = c.get("/api/v1/version")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "corrupt_index" and rel in body["detail"] and "sha256" in body["detail"]


def test_without_verification_the_corrupt_version_loads(tiny_artifacts: Path, tmp_path: Path) -> None:
    """verify_hashes=False is the old behaviour: what the check costs is the only reason to turn it off."""
    root = _copy(tiny_artifacts, tmp_path / "artifacts")
    _corrupt_one_byte((root / "current").resolve())
    with TestClient(create_app(ServiceSettings(artifacts=root, watch_interval_s=0, verify_hashes=False))) as c:
        assert c.get("/api/v1/version").status_code == 200


def test_a_corrupt_new_version_keeps_the_old_one_and_is_not_hashed_again(
    tiny_artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy(tiny_artifacts, tmp_path / "artifacts")
    old = (root / "current").resolve()
    holder = IndexHolder(root)
    assert holder.reload() and holder.get().dir == old

    bad = root / "versions" / (old.name + "-copy")
    shutil.copytree(old, bad)
    _corrupt_one_byte(bad)
    tmp_link = root / "current.tmp"
    tmp_link.symlink_to(bad.relative_to(root))
    os.replace(tmp_link, root / "current")

    calls = []
    real = indexer.artifacts.sha256_file
    monkeypatch.setattr(indexer.artifacts, "sha256_file", lambda p: calls.append(p) or real(p))
    assert holder.try_reload() is False
    assert holder.get().dir == old  # still serving the good version
    hashed = len(calls)
    assert hashed >= 1
    with pytest.raises(CorruptVersion, match="not served"):
        holder.reload()
    assert len(calls) == hashed  # remembered, not read again every watch interval
