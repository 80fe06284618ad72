"""`skysift export-hats`: a published version as a HATS catalogue (indexer.hats_export).

    skysift export-hats --artifacts artifacts --out exports                        # the current version
    skysift export-hats --artifacts artifacts --version <version> --out exports --name dr9 --k 20 --columns z,mag_r

hats-import, dask and FAISS are imported inside the command, so `skysift --help` does not load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def export_hats(
    out: Annotated[Path, typer.Option("--out", help="folder to write the catalogue folder <name> into")],
    artifacts_root: Annotated[Path, typer.Option("--artifacts", help="artifacts root (versions/, current)")] = Path(
        "artifacts"),
    version: Annotated[str | None, typer.Option(help="version to export (default: current)")] = None,
    name: Annotated[str, typer.Option(help="catalogue name: the folder under --out")] = "skysift",
    k: Annotated[int, typer.Option("--k", help="similarity neighbours per object (nbr_1..nbr_k)")] = 10,
    columns: Annotated[
        str | None, typer.Option(help="comma-separated catalogue columns to carry as well, e.g. z,mag_r")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="neighbour queries per batch")] = 4096,
    workers: Annotated[int, typer.Option(help="dask workers for hats-import (1: threads in this process)")] = 1,
    overwrite: Annotated[bool, typer.Option(help="replace an existing catalogue of that name")] = False,
) -> None:
    """Export a published version (scores and k similarity neighbours per object) as a HATS catalogue."""
    from .artifacts import check_root, current_dir
    from .errors import ArtifactError
    from .hats_export import export_hats as run_export

    root = check_root(artifacts_root)
    if version is None:
        version_dir = current_dir(root)
    else:
        version_dir = root / "versions" / version
        if not version_dir.is_dir():
            raise ArtifactError(f"{root}: no version {version!r} under versions/")
    result = run_export(
        version_dir, out, name=name, k=k, batch_size=batch_size, workers=workers, overwrite=overwrite,
        columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else (),
        log=lambda line: console.print(f"  {line}"),
    )
    console.print(f"version {result.version}: {result.n_exported} of {result.n_objects} objects -> "
                  f"{result.catalog_path} ({result.k} neighbours each)")
    if result.n_no_position:
        console.print(f"  {result.n_no_position} object(s) without a sky position left out (no HEALPix tile)")


def register(app: typer.Typer) -> None:
    app.command("export-hats")(export_hats)
