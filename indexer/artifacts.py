"""Versioned, immutable artifacts and their atomic publishing (DESIGN.md §3 "Artifacts").

    artifacts/versions/<version>/   immutable once published
    artifacts/current -> versions/<version>   swapped with one atomic rename
    artifacts/building/<job>/      work in progress, never read by the service

A version directory is renamed into `versions/` only after every file has been written and
hashed, and `current` is replaced by renaming a freshly made symlink over it (POSIX rename is
atomic), so a reader sees either the old version or the new one, never a half-written one.

Publishing is idempotent: before the rename, `publish` writes the version it is about to create
(and its pid) into `<stage>.publish.json`; if the process dies between the rename and the swap of
`current`, running `publish` on the same stage again finds the complete version in `versions/` and
only swaps `current` (and `skysift index` on the same job does the same: indexer/pipeline.py).

`published.jsonl` logs every version `current` is about to point at (written before the swap),
and a pending publish given up (`abandon_publish`). An orphan is a complete version that is not
current and either is named by a dead publish's intent or, no live publish being about to swap it
in, has no log entry making it current: `orphans` lists them, `remove_orphans` deletes them. A
root published before the log existed starts it with the versions it then holds (but those a
pending publish names) taken as published.
`crash_point` is fault injection for tests/indexer/test_crash_safety.py.
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

from encoder.digest import sha256_file

from .errors import ArtifactError, ArtifactMismatch, NoCurrentVersion

MANIFEST = "manifest.json"
HISTORY = "published.jsonl"
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


def _complete_versions(root: Path) -> list[str]:
    vdir = Path(root) / "versions"
    return sorted(d.name for d in vdir.iterdir() if (d / MANIFEST).exists()) if vdir.is_dir() else []


def _intents(root: Path) -> list[tuple[Path, str, bool]]:
    """(intent file, version it names, whether the publishing process still runs) for every
    publish under root/building that has renamed (or is about to rename) a stage into versions/."""
    out = []
    for p in sorted((Path(root) / "building").glob("*/*.publish.json")):
        try:
            intent = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        pid = intent.get("pid")
        out.append((p, str(intent["version"]), pid is not None and pid != os.getpid() and _pid_alive(str(pid))))
    return out


def published(root: Path) -> set[str] | None:
    """Versions whose last entry in published.jsonl made them current (None: a root from before the log)."""
    path = Path(root) / HISTORY
    if not path.exists():
        return None
    last: dict[str, bool] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            last[str(entry["version"])] = not entry.get("abandoned", False)
        except (ValueError, KeyError, TypeError, AttributeError):  # a line cut short by a kill
            continue
    return {v for v, made_current in last.items() if made_current}


def _log(root: Path, version: str, **entry: Any) -> None:
    """Append one entry for `version` to published.jsonl (fsynced)."""
    path = Path(root) / HISTORY
    lines = []
    if not path.exists():  # start the log of an older root: what it holds now counts as published
        pending = {v for _, v, _ in _intents(root)}
        lines = [{"version": v, "assumed": True} for v in _complete_versions(root) if v not in pending and v != version]
    lines.append({"version": version, "at": now_iso(), **entry})
    with open(path, "a") as f:
        f.write("".join(json.dumps(x) + "\n" for x in lines))
        f.flush()
        os.fsync(f.fileno())


def point_current(root: Path, version: str) -> None:
    """Atomically make root/current point at versions/<version> (logged in published.jsonl first)."""
    root = Path(root)
    if not (root / "versions" / version / MANIFEST).exists():
        raise ArtifactError(f"no complete version {version!r} under {root / 'versions'}")
    _point_milvus_alias(root / "versions" / version)  # before the swap: Milvus down leaves both as they were
    _log(root, version)  # before the swap: a kill after it cannot leave a current version unlogged
    for stale in root.glob(".current.*.tmp"):  # left by a process killed before its rename
        if not _pid_alive(stale.name.split(".")[2]):
            stale.unlink(missing_ok=True)
    tmp = root / f".current.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(Path("versions") / version, tmp)
    crash_point("publish.before_swap")
    os.replace(tmp, root / "current")
    _fsync_dir(root)


def _milvus_part(version_dir: Path) -> dict[str, Any] | None:
    """The manifest's Milvus part when this artifacts root owns the collection: a version folder
    copied into another root (a backup, a test) names the same collection, and must neither move
    its alias nor drop it."""
    part = read_manifest(version_dir).get("milvus")
    if not isinstance(part, dict):
        return None
    owner = part.get("artifacts")
    return part if owner is None or Path(owner) == version_dir.resolve().parent.parent else None


def _point_milvus_alias(version_dir: Path) -> None:
    """A version built with `--backend milvus` is also a collection: its alias follows `current`
    (publish and rollback), so Milvus clients other than this service see the same version."""
    part = _milvus_part(version_dir)
    if part is not None and part.get("alias"):
        from .milvus_backend import point_alias

        point_alias(part["uri"], part["alias"], part["collection"])


def _drop_milvus_collection(version_dir: Path) -> None:
    part = _milvus_part(version_dir) if (version_dir / MANIFEST).exists() else None
    if part is not None:
        from .milvus_backend import drop_collection

        drop_collection(part["uri"], part["collection"])


def _intent_path(stage: Path) -> Path:
    return stage.with_name(stage.name + ".publish.json")


def pending_publish(stage: Path) -> str | None:
    """The version a killed publish of `stage` renamed into versions/ without swapping `current`
    to it (None when there is none: the stage is still there, or no intent names a version)."""
    stage, intent = Path(stage), _intent_path(Path(stage))
    if stage.exists() or not intent.exists():
        return None
    return str(json.loads(intent.read_text())["version"])


def abandon_publish(root: Path, stage: Path) -> None:
    """Give up the pending publish of `stage`: its version stays in versions/, logged as never made
    current (an orphan, even if the kill came after it was logged and before the swap)."""
    version = pending_publish(stage)
    if version is not None and (Path(root) / "versions" / version).exists():
        _log(Path(root), version, abandoned=True)
    _intent_path(Path(stage)).unlink(missing_ok=True)


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
        tmp.write_text(json.dumps({"version": version, "pid": os.getpid()}))
        os.replace(tmp, intent)
        os.rename(stage, dest)  # atomic on one filesystem: the version appears complete or not at all
        _fsync_dir(dest.parent)
        crash_point("publish.after_rename")
    point_current(root, version)
    intent.unlink(missing_ok=True)
    return version


def check_root(root: Path, allow_empty: bool = False) -> Path:
    """`root` if it is an artifacts root (a folder holding versions/, current or building/, or with
    `allow_empty` an empty folder: nothing built yet); a missing folder, a file or any other folder
    raises ArtifactError naming it."""
    root = Path(root)
    fix = "pass artifacts= the folder `skysift index` publishes into (default: artifacts)"
    if not root.exists():
        raise ArtifactError(f"{root}: no such folder; {fix}")
    if not root.is_dir():
        raise ArtifactError(f"{root}: not a folder; {fix}")
    if allow_empty and not any(root.iterdir()):
        return root
    if not any((root / name).exists() or (root / name).is_symlink() for name in ("versions", "current", "building")):
        raise ArtifactError(f"{root}: not an artifacts root (no versions/, current or building/ in it); {fix}")
    return root


def current_dir(root: Path) -> Path:
    link = Path(root) / "current"
    if not link.exists():
        raise NoCurrentVersion(f"nothing published under {root} yet (no 'current'); run `skysift index`")
    return link.resolve()


def current_version(root: Path) -> str:
    return current_dir(root).name


def orphans(root: Path) -> list[str]:
    """Complete versions never made current: left by a publish killed between its rename into
    versions/ and the swap of `current` (see the module docstring)."""
    root = Path(root)
    cur = current_version(root) if (root / "current").exists() else None
    intents = _intents(root)
    live = {v for _, v, alive in intents if alive}
    dead = {v for _, v, alive in intents if not alive}
    logged = published(root)
    return [v for v in _complete_versions(root)
            if v != cur and v not in live and (v in dead or (logged is not None and v not in logged))]


def list_versions(root: Path) -> list[dict[str, Any]]:
    vdir = Path(root) / "versions"
    cur = current_version(root) if (Path(root) / "current").exists() else None
    orphaned = set(orphans(root))
    out = []
    for d in sorted(vdir.iterdir()) if vdir.exists() else []:
        if (d / MANIFEST).exists():
            m = read_manifest(d)
            out.append({"version": d.name, "current": d.name == cur, "orphan": d.name in orphaned,
                        "created": m.get("created"), "n_objects": m.get("n_objects"),
                        "index": m.get("index", {}).get("factory")})
    return out


def rollback(root: Path, to: str | None = None) -> str:
    """Point current at `to`, or at the newest published (not orphaned) version older than the current one."""
    versions = [v["version"] for v in list_versions(root) if not v["orphan"]]
    if to is None:
        cur = current_version(root)
        older = [v for v in versions if v < cur]
        if not older:
            raise ArtifactError(f"no version older than {cur} to roll back to")
        to = older[-1]
    point_current(root, to)
    for intent, version, _ in _intents(root):  # an orphan made current by hand is published now
        if version == to:
            intent.unlink(missing_ok=True)
    return to


def remove_orphans(root: Path) -> list[str]:
    """Delete every orphan (and the dead intents naming it); returns the versions removed."""
    gone = orphans(root)
    for version in gone:
        _drop_milvus_collection(Path(root) / "versions" / version)
        shutil.rmtree(Path(root) / "versions" / version)
    for intent, version, alive in _intents(root):
        if version in gone and not alive:
            intent.unlink(missing_ok=True)
    return gone


def remove_version(root: Path, version: str) -> None:
    """Delete a version explicitly; the current one is refused."""
    if (Path(root) / "current").exists() and current_version(root) == version:
        raise ArtifactError(f"{version} is current; roll back or publish another version first")
    d = Path(root) / "versions" / version
    if not d.exists():
        raise ArtifactError(f"no version {version}")
    _drop_milvus_collection(d)
    shutil.rmtree(d)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
