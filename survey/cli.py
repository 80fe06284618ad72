"""`skysift simulate` (and `skysift ingest`, see survey.ingest)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .simulate.settings import SimSettings
from .simulate.survey import simulate as run_simulation

console = Console()


def simulate(
    out: Annotated[Path, typer.Option("--out", help="folder for the shard-*.h5 files")] = Path("data/sim"),
    preset: Annotated[str, typer.Option(help="tiny | demo | bench")] = "demo",
    n_objects: Annotated[int | None, typer.Option("--n", help="number of objects (overrides the preset)")] = None,
    seed: Annotated[int, typer.Option(help="seed: same seed, same survey")] = 0,
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores)")] = None,
    shard_size: Annotated[int, typer.Option(help="objects per shard")] = 1024,
) -> None:
    """Simulate a survey with ground truth (GalSim galaxies, lenstronomy lenses, artifacts)."""
    extra = {"workers": workers} if workers else {}
    s = SimSettings(out_dir=out, preset=preset, n_objects=n_objects, seed=seed, shard_size=shard_size, **extra)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("sim", total=s.size)
        run_simulation(s, on_shard=lambda n: bar.advance(task, n))
    dt = time.perf_counter() - t0
    console.print(f"{s.size} objects in {dt:.1f} s ({s.size / dt:.0f} objects/s) -> {out}")


def ingest(
    source: Annotated[Path, typer.Argument(help="file or folder to read")],
    kind: Annotated[str, typer.Option(help="stein | hayat | fits | images | mosaic")],
    out: Annotated[Path, typer.Option("--out", help="folder for the native shards")],
    catalog: Annotated[
        Path | None, typer.Option(help="GalSim catalog (fits), CSV (images), source list (mosaic)")
    ] = None,
    size_px: Annotated[int | None, typer.Option(help="pad/crop every stamp to this size")] = None,
    pixel_scale_arcsec: Annotated[
        float | None, typer.Option(help="resample to (or, for images, the) pixel scale")
    ] = None,
    bands: Annotated[str | None, typer.Option(help="comma-separated band names")] = None,
    shard_size: int = 4096,
    overwrite: bool = False,
) -> None:
    """Convert a survey in a published layout into native shards; lists every rejected object."""
    from .ingest import ingest as run_ingest

    report = run_ingest(
        source,
        kind,
        out,
        shard_size=shard_size,
        size_px=size_px,
        pixel_scale_arcsec=pixel_scale_arcsec,
        bands=tuple(bands.split(",")) if bands else None,
        catalog=catalog,
        overwrite=overwrite,
    )
    console.print(f"read {report.n_read}, wrote {report.n_written}, rejected {len(report.rejected)} -> {out}")
    for r in report.rejected:
        console.print(f"  rejected {r.object_id} in {r.source}: {r.reason}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)
