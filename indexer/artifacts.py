"""Versioned, immutable artifacts and their atomic publishing (DESIGN.md §3 "Artifacts").

    artifacts/versions/<version>/   immutable once published
    artifacts/current -> versions/<version>   swapped with one atomic rename
    artifacts/building/<job>/      work in progress, never read by the service

A version directory is renamed into `versions/` only after every file has been written and
hashed, and `current` is replaced by renaming a freshly made symlink over it (POSIX rename is
atomic), so a reader sees either the old version or the new one, never a half-written one.

Publishing is idempotent: before the rename, `publish` writes the version it is about to create
into `<stage>.publish.json`; if the process dies between the rename and the swap of `current`,
running `publish` on the same stage again finds the complete version in `versions/` and only
swaps `current`. `crash_point` is fault injection for tests/indexer/test_crash_safety.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ArtifactError, ArtifactMismatch, NoCurrentVersion

MANIFEST = "manifest.json"
CRASH_ENV = "SKYSIFT_TEST_CRASH_AT"
_crash_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests; does nothing unless SKYSIFT_TEST_CRASH_AT is set.

    `SKYSIFT_TEST_CRASH_AT=<name>[:<n>]` SIGKILLs this process the n-th time (default: first) it
    reaches the point called `name`. Only the named points in encode/build/artifacts call this, so a
    test can kill the process deterministically between two particular writes. (A documented
    exception to "library code never reads the environment": the kill must happen inside the
    subprocess, which a test reaches only through its environment.)
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _crash_hits[name] = _crash_hits.get(name, 0) + 1
    if _crash_hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entries(directory: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {sha256, bytes}} for every file under directory except the manifest."""
    out = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[str(p.relative_to(directory))] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


def version_name(files: dict[str, dict[str, Any]], now: datetime | None = None) -> str:
    """UTC time + a short hash of the content."""
    now = now or datetime.now(UTC)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:8]
    return f"{now:%Y%m%dT%H%M%SZ}-{digest}"


def write_manifest(stage: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every staged file into the manifest and write it (last, so its presence means done)."""
    manifest = {**manifest, "files": file_entries(stage)}
    tmp = stage / (MANIFEST + ".partial")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, stage / MANIFEST)
    return manifest


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = Path(version_dir) / MANIFEST
    if not path.exists():
        raise ArtifactError(f"{version_dir}: no {MANIFEST}; not a complete version")
    return json.loads(path.read_text())


def validate(version_dir: Path, check_hashes: bool = True, check_counts: bool = True) -> dict[str, Any]:
    """Every file listed is present with its size (and hash), and the row counts agree (see
    `check_counts`); raise ArtifactMismatch otherwise."""
    manifest = read_manifest(version_dir)
    for rel, entry in manifest["files"].items():
        p = Path(version_dir) / rel
        if not p.exists():
            raise ArtifactMismatch(f"{version_dir}: {rel} listed in the manifest is missing")
        if p.stat().st_size != entry["bytes"]:
            raise ArtifactMismatch(f"{version_dir}: {rel} has {p.stat().st_size} bytes, manifest says {entry['bytes']}")
        if check_hashes and sha256_file(p) != entry["sha256"]:
            raise ArtifactMismatch(f"{version_dir}: {rel} does not match its sha256 in the manifest")
    if check_counts:
        _check_counts(Path(version_dir), manifest)
    return manifest


def _check_counts(version_dir: Path, manifest: dict[str, Any]) -> None:
    """catalog, scores, embeddings and map all have n_objects rows; object_ids are unique."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = manifest["n_objects"]
    files = manifest["files"]
    rows: dict[str, int] = {}
    for name in ("catalog.parquet", "scores.parquet"):
        if name in files:
            rows[name] = pq.read_metadata(version_dir / name).num_rows
    for name in ("embeddings.npy", "map.npy"):
        if name in files:
            rows[name] = int(np.load(version_dir / name, mmap_mode="r").shape[0])
    wrong = {k: v for k, v in rows.items() if v != n}
    if wrong:
        raise ArtifactMismatch(f"{version_dir}: manifest says {n} objects but {wrong}")
    if "catalog.parquet" in files:
        ids = pq.read_table(version_dir / "catalog.parquet", columns=["object_id"]).column("object_id")
        distinct = pc.count_distinct(ids).as_py()
        if distinct != n:
            raise ArtifactMismatch(f"{version_dir}: {n - distinct} duplicate object_id(s) in catalog.parquet")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def point_current(root: Path, version: str) -> None:
    """Atomically make root/current point at versions/<version>."""
    root = Path(root)
    if not (root / "versions" / version / MANIFEST).exists():
        raise ArtifactError(f"no complete version {version!r} under {root / 'versions'}")
    for stale in root.glob(".current.*.tmp"):  # left by a process killed before its rename
        if not _pid_alive(stale.name.split(".")[2]):
            stale.unlink(missing_ok=True)
    tmp = root / f".current.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(Path("versions") / version, tmp)
    crash_point("publish.before_swap")
    os.replace(tmp, root / "current")
    _fsync_dir(root)


def _intent_path(stage: Path) -> Path:
    return stage.with_name(stage.name + ".publish.json")


def publish(root: Path, stage: Path) -> str:
    """Validate a staged build, move it into versions/, swap current. Returns the version name.

    Re-running it after a crash between the move and the swap finishes the swap (the stage is
    gone by then; `<stage>.publish.json` names the version it became).
    """
    root, stage = Path(root), Path(stage)
    intent = _intent_path(stage)
    if not stage.exists() and intent.exists():
        version = json.loads(intent.read_text())["version"]
        validate(root / "versions" / version)
        point_current(root, version)
        intent.unlink(missing_ok=True)
        return version
    manifest = validate(stage)
    version = manifest["version"]
    dest = root / "versions" / version
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if read_manifest(dest)["files"] != manifest["files"]:
            raise ArtifactError(f"version {version} already exists at {dest} with other content")
        shutil.rmtree(stage)  # the same build was published before (same second, same bytes)
    else:
        tmp = intent.with_name(intent.name + ".partial")
        tmp.write_text(json.dumps({"version": version}))
        os.replace(tmp, intent)
        os.rename(stage, dest)  # atomic on one filesystem: the version appears complete or not at all
        _fsync_dir(dest.parent)
        crash_point("publish.after_rename")
    point_current(root, version)
    intent.unlink(missing_ok=True)
    return version


def current_dir(root: Path) -> Path:
    link = Path(root) / "current"
    if not link.exists():
        raise NoCurrentVersion(f"nothing published under {root} yet (no 'current'); run `skysift index`")
    return link.resolve()


def current_version(root: Path) -> str:
    return current_dir(root).name


def list_versions(root: Path) -> list[dict[str, Any]]:
    vdir = Path(root) / "versions"
    cur = current_version(root) if (Path(root) / "current").exists() else None
    out = []
    for d in sorted(vdir.iterdir()) if vdir.exists() else []:
        if (d / MANIFEST).exists():
            m = read_manifest(d)
            out.append({"version": d.name, "current": d.name == cur, "created": m.get("created"),
                        "n_objects": m.get("n_objects"), "index": m.get("index", {}).get("factory")})
    return out


def rollback(root: Path, to: str | None = None) -> str:
    """Point current at `to`, or at the newest version older than the current one."""
    versions = [v["version"] for v in list_versions(root)]
    if to is None:
        cur = current_version(root)
        older = [v for v in versions if v < cur]
        if not older:
            raise ArtifactError(f"no version older than {cur} to roll back to")
        to = older[-1]
    point_current(root, to)
    return to


def remove_version(root: Path, version: str) -> None:
    """Delete a version explicitly; the current one is refused."""
    if (Path(root) / "current").exists() and current_version(root) == version:
        raise ArtifactError(f"{version} is current; roll back or publish another version first")
    d = Path(root) / "versions" / version
    if not d.exists():
        raise ArtifactError(f"no version {version}")
    shutil.rmtree(d)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
