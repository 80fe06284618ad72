"""Figures and tables of a simulated survey for docs/survey.md.

    skysift survey-figures sheets --survey /tmp/bench_survey --out docs/img
    skysift survey-figures hist --survey /tmp/demo_run/data/demo --out docs/img/survey_histograms.png
    skysift survey-figures columns --survey /tmp/demo_run/data/demo

`sheets` writes one contact sheet per class (objects without artifacts) and per artifact kind,
`docs/img/survey_<name>.png`: the first `--per` objects of each in row order (rows are a random
permutation, so these are a fair draw), Lupton colour (z, r, g -> R, G, B), north up, enlarged 2x.
`hist` draws redshift, r magnitude, seeing and depth (matplotlib, imported only here).
`columns` prints the catalog's columns as a markdown table (name, dtype, unit, meaning).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..native import NativeSurvey
from ..render import contact_sheet
from .artifacts import ARTIFACT_KINDS
from .columns import describe
from .physics import CLASSES

SHEET_CLASSES = (*CLASSES, "lens")


def sheet_rows(survey: NativeSurvey, per: int) -> dict[str, np.ndarray]:
    """name -> up to `per` row numbers: each class without artifacts, then each artifact kind."""
    cat = survey.catalog
    clean = cat["artifact_kind"] == ""
    out = {k: np.nonzero((cat["class"] == k) & clean)[0][:per] for k in SHEET_CLASSES}
    out |= {k: np.nonzero(cat["artifact_kind"] == k)[0][:per] for k in ARTIFACT_KINDS}
    return out


def write_sheets(survey: NativeSurvey, out: Path, per: int = 8, scale: int = 2) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in sheet_rows(survey, per).items():
        if not len(rows):
            continue
        sheet = contact_sheet(survey.images(rows), survey.bands, columns=per, scale=scale)
        # 256-colour palette: a third of the bytes, no visible loss on noisy stamps
        path = out / f"survey_{name}.png"
        sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
        written.append(path)
    return written


def write_histograms(survey: NativeSurvey, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cat = survey.catalog
    kind = cat["class"]
    fig, ax = plt.subplots(2, 2, figsize=(10, 7.5))
    galaxies = [k for k in CLASSES if k != "star"] + ["lens"]
    zs = [cat["z"][kind == k] for k in galaxies]
    ax[0, 0].hist(zs, bins=np.linspace(0, 0.8, 41), stacked=True, label=galaxies)
    ax[0, 0].set(xlabel="redshift z (stars excluded)", ylabel="objects", title="redshift by class")
    ax[0, 0].legend(fontsize=7)
    bins = np.linspace(14, 21.5, 46)
    for b in survey.bands:
        ax[0, 1].hist(cat[f"mag_{b}"], bins=bins, histtype="step", lw=1.5, label=f"mag_{b}")
    ax[0, 1].axvline(19.5, color="k", ls=":", lw=1, label="r limit 19.5 (before extinction)")
    ax[0, 1].set(xlabel="AB magnitude (total in stamp, after extinction)", ylabel="objects", title="magnitude")
    ax[0, 1].legend(fontsize=7)
    bins = np.linspace(0.6, 2.4, 46)
    for b in survey.bands:
        ax[1, 0].hist(cat[f"psf_fwhm_{b}"], bins=bins, histtype="step", lw=1.5, label=f"psf_fwhm_{b}")
    ax[1, 0].set(xlabel="PSF FWHM (arcsec)", ylabel="objects", title="seeing")
    ax[1, 0].legend(fontsize=7)
    bins = np.linspace(21, 25.5, 46)
    for b in survey.bands:
        ax[1, 1].hist(cat[f"depth_{b}"], bins=bins, histtype="step", lw=1.5, label=f"depth_{b}")
    ax[1, 1].set(xlabel="5-sigma point-source depth (AB mag)", ylabel="objects", title="depth")
    ax[1, 1].legend(fontsize=7)
    fig.suptitle(f"{survey.root} ({len(cat):,} objects)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def columns_markdown(survey: NativeSurvey) -> str:
    cat = survey.catalog
    lines = ["| column | dtype | unit | meaning | example |", "|---|---|---|---|---|"]
    for name in cat.names:
        unit, meaning = describe(name)
        v = cat[name]
        dtype = "string" if v.dtype.kind == "O" else str(v.dtype)
        ex = v[0]
        example = f"{ex:.4g}" if v.dtype.kind == "f" else str(ex)
        lines.append(f"| `{name}` | {dtype} | {unit} | {meaning} | {example} |")
    return "\n".join(lines)
