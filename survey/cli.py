"""`skysift simulate`, `skysift ingest` (see survey.ingest) and `skysift survey-figures`.

    skysift survey-figures sheets --survey /tmp/bench_survey --out docs/img
    skysift survey-figures hist --survey /tmp/demo_run/data/demo --out docs/img/survey_histograms.png
    skysift survey-figures columns --survey /tmp/demo_run/data/demo
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()


def simulate(
    out: Annotated[Path | None, typer.Option("--out", help="folder for the shard-*.h5 files")] = None,
    preset: Annotated[Literal["tiny", "demo", "bench"] | None, typer.Option(help="survey size")] = None,
    n_objects: Annotated[int | None, typer.Option("--n", help="number of objects (overrides the preset)")] = None,
    seed: Annotated[int | None, typer.Option(help="seed: same seed, same survey")] = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: one per core)")] = None,
    shard_size: Annotated[int | None, typer.Option(help="objects per shard")] = None,
    *,
    settings: Callable[..., Any],
) -> None:
    """Simulate a survey with ground truth (GalSim galaxies, lenstronomy lenses, artifacts).

    Every SimSettings field (survey/simulate/settings.py) can also come from --set, --config or a
    SKYSIFT_SIM_* variable; options left out take its defaults."""
    from .simulate.settings import SimSettings  # here, not at the top: `skysift --help` need not load GalSim
    from .simulate.survey import simulate as run_simulation

    s: SimSettings = settings(SimSettings, {"out_dir": out, "preset": preset, "n_objects": n_objects, "seed": seed,
                                            "workers": workers, "shard_size": shard_size})
    t0 = time.perf_counter()
    with Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("sim", total=s.size)
        run_simulation(s, on_shard=lambda n: bar.advance(task, n))
    dt = time.perf_counter() - t0
    console.print(f"{s.size} objects in {dt:.1f} s ({s.size / dt:.0f} objects/s) -> {s.out_dir}")


# `skysift ingest`'s longer option texts, kept out of its signature so that it reads as a list of options
INGEST_HELP = {
    "catalog": "GalSim catalog (fits), CSV (images: optional, default <folder>/catalog.csv; without one, ids come "
               "from the file paths and positions are unknown), source list (mosaic)",
    "pixel_scale_arcsec": "resample to this pixel scale (images: the images' own scale unless "
                          "--source-pixel-scale-arcsec is given)",
    "source_scale": "images: their own pixel scale (arcsec/px), when resampling; mmu: the files' scale where they "
                    "carry no image_scale",
    "fit_px": "images/FITS: resample each stamp so its whole field fits N x N px",
    "units": "pixel units, one or one per band of --bands: nanomaggies, nJy, ADU, ... (flux) or display (0-1), "
             "display255 (0-255); default: display for images, nanomaggies for stein/hayat and Legacy Survey MMU "
             "data, flux for FITS",
    "bands": "comma-separated names of the input's planes in file order (an RGB image's R,G,B; with --band-files, "
             "the bands to assemble, in this order)",
    "out_bands": "comma-separated bands to write, in this order: a subset or reordering of --bands "
                 "(e.g. --bands i,r,g --out-bands g,r,i)",
    "band_files": "images/FITS: one single-band file per band, e.g. '{id}_{band}.fits' or '{band}/{id}.png' "
                  "(relative to the folder; needs --bands)",
}


def ingest(
    source: Annotated[Path, typer.Argument(help="file or folder to read")],
    kind: Annotated[Literal["stein", "hayat", "fits", "images", "mosaic", "mmu"],
                    typer.Option(help="the input's layout (mmu: a Multimodal Universe image dataset)")],
    out: Annotated[Path, typer.Option("--out", help="folder for the native shards")],
    catalog: Annotated[Path | None, typer.Option(help=INGEST_HELP["catalog"])] = None,
    size_px: Annotated[int | None, typer.Option(help="pad/crop every stamp to this size")] = None,
    pixel_scale_arcsec: Annotated[float | None, typer.Option(help=INGEST_HELP["pixel_scale_arcsec"])] = None,
    source_pixel_scale_arcsec: Annotated[float | None, typer.Option(help=INGEST_HELP["source_scale"])] = None,
    fit_px: Annotated[int | None, typer.Option(help=INGEST_HELP["fit_px"])] = None,
    units: Annotated[str | None, typer.Option(help=INGEST_HELP["units"])] = None,
    bands: Annotated[str | None, typer.Option(help=INGEST_HELP["bands"])] = None,
    out_bands: Annotated[str | None, typer.Option(help=INGEST_HELP["out_bands"])] = None,
    band_files: Annotated[str | None, typer.Option(help=INGEST_HELP["band_files"])] = None,
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
        bands=tuple(b.strip() for b in bands.split(",")) if bands else None,
        catalog=catalog,
        overwrite=overwrite,
        units=units,
        source_pixel_scale_arcsec=source_pixel_scale_arcsec,
        fit_px=fit_px,
        band_files=band_files,
        out_bands=tuple(b.strip() for b in out_bands.split(",")) if out_bands else None,
    )
    console.print(f"read {report.n_read}, wrote {report.n_written}, rejected {len(report.rejected)} -> {out}")
    console.print(f"  bands {','.join(report.bands)}, units {','.join(report.units)}, "
                  f"{report.pixel_scale_arcsec:.4g} arcsec/px, stamps {report.image_shape}")
    for note in report.notes:
        console.print(f"  note: {note}")
    for r in report.rejected:
        console.print(f"  rejected {r.object_id} in {r.source}: {r.reason}")


def survey_figures(
    what: Annotated[Literal["sheets", "hist", "columns"], typer.Argument(
        help="sheets: a contact sheet per class and artifact kind; hist: redshift, magnitude, seeing and "
             "depth histograms; columns: the catalog's columns as a markdown table")],
    survey: Annotated[Path, typer.Option(help="folder of native shards (a simulated survey)")],
    out: Annotated[Path | None, typer.Option(
        help="sheets: a folder (default docs/img); hist: a PNG (default docs/img/survey_histograms.png)")] = None,
    per: Annotated[int, typer.Option(min=1, help="sheets: objects per sheet")] = 8,
    scale: Annotated[int, typer.Option(min=1, help="sheets: enlargement")] = 2,
) -> None:
    """Figures and tables of a simulated survey for docs/survey.md (survey/simulate/figures.py)."""
    from .native import NativeSurvey
    from .simulate.figures import columns_markdown, write_histograms, write_sheets

    data = NativeSurvey(survey)  # plain print below: paths and a table to paste, never wrapped by rich
    if what == "sheets":
        for path in write_sheets(data, out or Path("docs/img"), per, scale):
            print(path)  # noqa: T201 - entry point
    elif what == "hist":
        print(write_histograms(data, out or Path("docs/img/survey_histograms.png")))  # noqa: T201
    else:
        print(columns_markdown(data))  # noqa: T201


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("ingest")(ingest)
    app.command("survey-figures")(survey_figures)
