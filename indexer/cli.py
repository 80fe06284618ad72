"""`skysift encode`, `skysift index`, `skysift publish`, `skysift versions`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import artifacts
from .build import build_version
from .encode import default_device, encode_survey
from .pipeline import index_survey, job_dir
from .settings import IndexSettings

console = Console()

SurveyOpt = Annotated[Path, typer.Option("--survey", help="folder of native shards")]
EncoderOpt = Annotated[Path, typer.Option("--encoder", help="folder with model.safetensors + model.json")]
ArtifactsOpt = Annotated[Path, typer.Option("--artifacts", help="artifacts root (versions/, current)")]
JobOpt = Annotated[str, typer.Option("--job", help="build job name; re-running a job resumes it")]


def _progress(total: int) -> tuple[Progress, int]:
    bar = Progress(TextColumn("encoding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.speed} obj/s"),
                   TimeRemainingColumn(), console=console)
    return bar, bar.add_task("encode", total=total)


def _n(survey: Path) -> int:
    from survey.native import NativeSurvey

    return len(NativeSurvey(survey).catalog)


def encode(survey: SurveyOpt = Path("data/sim"), encoder: EncoderOpt = Path("runs/train/encoder"),
           artifacts_root: ArtifactsOpt = Path("artifacts"), job: JobOpt = "default",
           shard_size: int = 4096, batch_size: int = 256, device: str = "auto") -> None:
    """Encode a survey into resumable embedding shards under artifacts/building/<job>."""
    import os

    s = IndexSettings(survey=survey, encoder=encoder, artifacts=artifacts_root, job=job, shard_size=shard_size,
                      batch_size=batch_size, device=device)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dev = default_device() if device == "auto" else device
    if dev == "cuda" and world > 1:
        dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    bar, task = _progress(_n(survey) // world)
    with bar:
        done = encode_survey(s.survey, s.encoder, job_dir(s), shard_size=s.shard_size, batch_size=s.batch_size,
                             device=dev, rank=rank, world=world, on_rows=lambda n: bar.advance(task, n))
    console.print(f"rank {rank}: encoded {len(done)} new shard(s) into {job_dir(s)}")


def index(survey: SurveyOpt = Path("data/sim"), encoder: EncoderOpt = Path("runs/train/encoder"),
          artifacts_root: ArtifactsOpt = Path("artifacts"), job: JobOpt = "default",
          lens_labels: Annotated[Path | None, typer.Option(help="CSV of known lens object_ids")] = None,
          index_factory: Annotated[str | None, typer.Option(help="FAISS factory string (default: by size)")] = None,
          publish_now: Annotated[bool, typer.Option("--publish/--no-publish")] = True) -> None:
    """Encode (resuming), build the index and scores, and publish a new version."""
    s = IndexSettings(survey=survey, encoder=encoder, artifacts=artifacts_root, job=job, lens_labels=lens_labels,
                      index_factory=index_factory)
    if publish_now:
        bar, task = _progress(_n(survey))
        with bar:
            version = index_survey(s, on_rows=lambda n: bar.advance(task, n), log=console.print)
        console.print(f"published {version}; current -> versions/{version}")
    else:
        stage = build_version(s, job_dir(s), console.print)
        console.print(f"staged at {stage}; run `skysift publish --stage {stage}`")


def publish(stage: Annotated[Path, typer.Option(help="a staged build (building/<job>/stage)")],
            artifacts_root: ArtifactsOpt = Path("artifacts")) -> None:
    """Validate a staged build and make it current (atomic)."""
    version = artifacts.publish(artifacts_root, stage)
    console.print(f"published {version}")


def versions(artifacts_root: ArtifactsOpt = Path("artifacts"),
             rollback: Annotated[bool, typer.Option("--rollback", help="point current at the previous version")] = False,
             to: Annotated[str | None, typer.Option(help="with --rollback: this version")] = None,
             remove: Annotated[str | None, typer.Option(help="delete this (non-current) version")] = None) -> None:
    """List versions; roll back; remove an old version explicitly."""
    if rollback:
        console.print(f"current -> {artifacts.rollback(artifacts_root, to)}")
    if remove:
        artifacts.remove_version(artifacts_root, remove)
        console.print(f"removed {remove}")
    table = Table("version", "current", "created", "objects", "index")
    for v in artifacts.list_versions(artifacts_root):
        table.add_row(v["version"], "*" if v["current"] else "", str(v["created"]), str(v["n_objects"]), str(v["index"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    for fn in (encode, index, publish, versions):
        app.command(fn.__name__)(fn)
