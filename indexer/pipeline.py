"""encode -> build -> publish in one call (what `skysift index` and the demo run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .artifacts import publish
from .build import build_version
from .encode import default_device, encode_survey
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
    stage = build_version(s, job, log)
    version = publish(Path(s.artifacts), stage)
    return version
