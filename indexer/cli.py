"""`skysift encode`, `skysift index`, `skysift publish`, `skysift versions`.

    skysift encode --survey data/demo --encoder runs/demo/encoder --job demo --shard-size 4096
    torchrun --nproc_per_node=8 -m skysift.cli encode --survey data/demo --encoder runs/demo/encoder --job demo
    skysift index --survey data/demo --encoder runs/demo/encoder --job demo            # resumes, builds, publishes
    skysift index ... --no-publish && skysift publish --stage artifacts/building/demo/stage
    skysift versions [--rollback [--to VERSION]] [--remove VERSION] [--remove-orphans]
    skysift index --config index.toml --set recall_sample=500    # any IndexSettings field (encode too)

Heavy imports (torch, faiss) happen inside the commands, so `versions` and `publish` start fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from . import artifacts
from .settings import IndexSettings

console = Console()

# Options default to None (not given): IndexSettings owns the defaults (indexer/settings.py).
SurveyOpt = Annotated[Path | None, typer.Option("--survey", help="folder of native shards")]
EncoderOpt = Annotated[Path | None, typer.Option("--encoder", help="folder with model.safetensors + model.json")]
ArtifactsOpt = Annotated[Path, typer.Option("--artifacts", help="artifacts root (versions/, current)")]
SettingsArtifactsOpt = Annotated[Path | None, typer.Option("--artifacts", help="artifacts root (versions/, current)")]
JobOpt = Annotated[str | None, typer.Option("--job", help="build job name; re-running a job resumes it")]
ShardOpt = Annotated[int | None, typer.Option(
    "--shard-size", help="objects per embedding shard (unit of resumption)")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="objects per forward pass")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="reader processes (0: one background thread)")]

def three_figures(x: float) -> str:
    """x to 3 significant figures, without an exponent: 340.116 -> '340', 1234.5 -> '1230', 0.01234 -> '0.0123'."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = 2 - math.floor(math.log10(abs(x)))
    return f"{round(x, decimals):.{max(decimals, 0)}f}"


class RateColumn(ProgressColumn):
    """Objects per second to 3 significant figures; '–' until rich has measured a rate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{'–' if speed is None else three_figures(speed)} obj/s")


def _progress(total: int) -> tuple[Progress, TaskID]:
    bar = Progress(TextColumn("encoding"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn(),
                   console=console)
    return bar, bar.add_task("encode", total=total)


def _n(survey: Path) -> int:
    from survey.native import NativeSurvey

    return len(NativeSurvey(survey).catalog)


def encode(survey: SurveyOpt = None, encoder: EncoderOpt = None, artifacts_root: SettingsArtifactsOpt = None,
           job: JobOpt = None, shard_size: ShardOpt = None, batch_size: BatchOpt = None, device: DeviceOpt = None,
           workers: WorkersOpt = None, *, settings: Callable[..., Any]) -> None:
    """Encode a survey into resumable embedding shards under artifacts/building/<job>.

    Every IndexSettings field can also come from --set, --config or a SKYSIFT_INDEX_* variable."""
    import os

    from .encode import encode_survey, n_shards, shards_of_rank
    from .pipeline import job_dir, resolve_device

    s: IndexSettings = settings(IndexSettings, {
        "survey": survey, "encoder": encoder, "artifacts": artifacts_root, "job": job, "shard_size": shard_size,
        "batch_size": batch_size, "device": device, "workers": workers})
    # torchrun sets RANK / WORLD_SIZE / LOCAL_RANK: the entry point reads them, the library does not.
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dev = resolve_device(s.device)
    if dev == "cuda" and world > 1:
        dev = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    n = _n(s.survey)
    mine = shards_of_rank(n, s.shard_size, rank, world)
    total = sum(min((k + 1) * s.shard_size, n) - k * s.shard_size for k in mine)
    bar, task = _progress(total)
    with bar:
        done = encode_survey(s.survey, s.encoder, job_dir(s), shard_size=s.shard_size, batch_size=s.batch_size,
                             device=dev, rank=rank, world=world, workers=s.workers, prefetch=s.prefetch,
                             precision=s.precision, on_rows=lambda m: bar.advance(task, m), log=console.print)
    console.print(f"rank {rank}/{world}: encoded {len(done)} new shard(s) of {len(mine)} "
                  f"({n_shards(n, s.shard_size)} in all) into {job_dir(s)}")


def index(survey: SurveyOpt = None, encoder: EncoderOpt = None, artifacts_root: SettingsArtifactsOpt = None,
          job: JobOpt = None, shard_size: ShardOpt = None, batch_size: BatchOpt = None, device: DeviceOpt = None,
          workers: WorkersOpt = None,
          lens_labels: Annotated[Path | None, typer.Option(help="CSV of known lens object_ids")] = None,
          index_factory: Annotated[str | None, typer.Option(help="FAISS factory string (default: by size)")] = None,
          index_storage: Annotated[Literal["auto", "memory", "ondisk"] | None, typer.Option(
              help="ondisk: IVF-PQ lists on disk (auto: past 10^7 objects; docs/scale.md)")] = None,
          index_processes: Annotated[int | None, typer.Option(
              min=1, help="processes filling an on-disk index's shards in parallel")] = None,
          map_method: Annotated[Literal["umap", "pca"] | None, typer.Option(
              help="default: umap if installed")] = None,
          anomaly_method: Annotated[Literal["mean", "kth", "lof"] | None, typer.Option()] = None,
          backend: Annotated[Literal["faiss", "milvus"] | None, typer.Option(
              help="milvus: also make the version a Milvus collection (needs --milvus-uri); default faiss")] = None,
          milvus_uri: Annotated[str | None, typer.Option(
              help="Milvus server URL (http://host:19530) or Milvus Lite file ending in .db")] = None,
          milvus_alias: Annotated[str | None, typer.Option(
              help="the Milvus alias publish and rollback point at the current version (default skysift_current)")]
          = None,
          milvus_index: Annotated[Literal["auto", "FLAT", "HNSW", "IVF_FLAT"] | None, typer.Option(
              help="the collection's index (auto: FLAT below 10^5 objects, HNSW above)")] = None,
          publish_now: Annotated[bool, typer.Option("--publish/--no-publish")] = True,
          *, settings: Callable[..., Any]) -> None:
    """Encode (resuming), build the index, scores and map, and publish a new version.

    Every IndexSettings field can also come from --set, --config or a SKYSIFT_INDEX_* variable."""
    from .build import build_version
    from .pipeline import index_survey, job_dir

    s: IndexSettings = settings(IndexSettings, {
        "survey": survey, "encoder": encoder, "artifacts": artifacts_root, "job": job, "shard_size": shard_size,
        "batch_size": batch_size, "device": device, "workers": workers, "lens_labels": lens_labels,
        "index_factory": index_factory, "index_storage": index_storage, "index_processes": index_processes,
        "map_method": map_method, "anomaly_method": anomaly_method, "backend": backend, "milvus_uri": milvus_uri,
        "milvus_alias": milvus_alias, "milvus_index": milvus_index})
    if publish_now:
        bar, task = _progress(_n(s.survey))
        with bar:
            version = index_survey(s, on_rows=lambda n: bar.advance(task, n), log=console.print)
        console.print(f"published {version}; current -> versions/{version}")
    else:
        from .encode import encode_survey
        from .pipeline import resolve_device

        encode_survey(s.survey, s.encoder, job_dir(s), shard_size=s.shard_size, batch_size=s.batch_size,
                      device=resolve_device(s.device), workers=s.workers, precision=s.precision, log=console.print)
        stage = build_version(s, job_dir(s), console.print)
        console.print(f"staged at {stage}; run `skysift publish --stage {stage} --artifacts {s.artifacts}`")


def publish(stage: Annotated[Path, typer.Option(help="a staged build (building/<job>/stage)")],
            artifacts_root: ArtifactsOpt = Path("artifacts")) -> None:
    """Validate a staged build (files, hashes, counts) and make it current (atomic; safe to re-run)."""
    version = artifacts.publish(artifacts_root, stage)  # a refusal ends `skysift publish` with one line, exit 1
    console.print(f"published {version}; current -> versions/{version}")


def versions(artifacts_root: ArtifactsOpt = Path("artifacts"),
             rollback: Annotated[bool, typer.Option("--rollback", help="point current at the previous version")]
             = False,
             to: Annotated[str | None, typer.Option(help="with --rollback: this version")] = None,
             remove: Annotated[str | None, typer.Option(help="delete this (non-current) version")] = None,
             remove_orphans: Annotated[bool, typer.Option(
                 "--remove-orphans", help="delete versions never made current (left by a killed publish)")]
             = False) -> None:
    """List versions and orphans (never made current); roll back; remove a version or the orphans.

    An orphan is a complete version a killed publish left in versions/ without making it current."""
    artifacts.check_root(artifacts_root)
    if rollback:
        console.print(f"current -> {artifacts.rollback(artifacts_root, to)}")
    if remove:
        artifacts.remove_version(artifacts_root, remove)
        console.print(f"removed {remove}")
    if remove_orphans:
        gone = artifacts.remove_orphans(artifacts_root)
        console.print(f"removed {len(gone)} orphan(s){': ' + ', '.join(gone) if gone else ''}")
    rows = artifacts.list_versions(artifacts_root)
    # version names are what one types into --to / --remove: never truncate them
    width = max([len(v["version"]) for v in rows] + [7])
    table = Table(Column("version", no_wrap=True, min_width=width), "state", "created", "objects", "index")
    for v in rows:
        state = "* current" if v["current"] else "orphan" if v["orphan"] else ""
        table.add_row(v["version"], state, str(v["created"]).replace("+00:00", "Z"),
                      str(v["n_objects"]), str(v["index"]))
    console.print(table)
    if not rows:
        console.print(f"no versions under {artifacts_root}", soft_wrap=True)  # a path to copy, unbroken
    n_orphans = sum(v["orphan"] for v in rows)
    if n_orphans:
        console.print(f"{n_orphans} orphan(s): complete versions a killed publish left and nothing made current; "
                      "`skysift index` on the same job and inputs finishes "
                      "that publish, `--remove-orphans` deletes them")


def register(app: typer.Typer) -> None:
    for fn in (encode, index, publish, versions):
        app.command(fn.__name__)(fn)

