"""encode -> build -> publish in one call (what `skysift index` and the demo run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .artifacts import abandon_publish, pending_publish, publish, read_manifest
from .build import build_key, build_version
from .encode import default_device, encode_survey
from .errors import ArtifactError
from .settings import IndexSettings


def job_dir(s: IndexSettings) -> Path:
    return Path(s.artifacts) / "building" / s.job


def resolve_device(device: str) -> str:
    return default_device() if device == "auto" else device


def index_survey(s: IndexSettings, on_rows: Callable[[int], None] | None = None,
                 log: Callable[[str], None] = lambda _: None) -> str:
    """Encode (resuming finished shards), build, publish; returns the new current version.

    A job whose survey pixels, objects, encoder or encoding settings changed since its shards were
    made is encoded again from scratch (one `log` line says what changed), never reused."""
    job = job_dir(s)
    encode_survey(s.survey, s.encoder, job, shard_size=s.shard_size, batch_size=s.batch_size,
                  device=resolve_device(s.device), workers=s.workers, prefetch=s.prefetch, precision=s.precision,
                  on_rows=on_rows, log=log)
    finished = finish_pending_publish(s, job, log)
    if finished is not None:
        return finished
    stage = build_version(s, job, log)
    version = publish(Path(s.artifacts), stage)
    return version


def finish_pending_publish(s: IndexSettings, job: Path, log: Callable[[str], None] = lambda _: None) -> str | None:
    """Finish a publish of this job that was killed between renaming its stage into versions/ and
    swapping `current`, when that version was built from what this run would build (same build
    key: survey, encoder, settings); returns it, or None when there is nothing to finish.

    A pending version built from other inputs is not published: it stays in versions/ as an
    orphan (one `log` line names it; `skysift versions --remove-orphans` deletes it)."""
    root, stage = Path(s.artifacts), job / "stage"
    pending = pending_publish(stage)
    if pending is None:
        return None
    try:
        manifest = read_manifest(root / "versions" / pending)
    except ArtifactError:  # removed by hand since: nothing left to finish
        abandon_publish(root, stage)
        return None
    if manifest.get("build_key") == build_key(s, job):
        version = publish(root, stage)
        log(f"finished the interrupted publish of {version} (built from the same survey, encoder and settings)")
        return version
    abandon_publish(root, stage)
    log(f"{pending} in versions/ was built by this job from other inputs or settings and never made current; "
        "building a new version (`skysift versions --remove-orphans` deletes the old one)")
    return None
