"""Colour composites of cutouts (Lupton et al. 2004 arcsinh stretch via astropy)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from astropy.visualization import make_lupton_rgb
from PIL import Image

from .units import DISPLAY_UNITS, SurveyUnits

# Relative weights that make a typical galaxy look neutral-ish in (z, r, g) -> (R, G, B),
# in the spirit of the Legacy Survey viewer's g,r,z colour scheme.
BAND_WEIGHTS = {"u": 2.0, "g": 2.2, "r": 1.3, "i": 1.1, "z": 1.0}


def rgb_planes(pixels: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, H, W) flux -> red, green, blue planes: reddest band red, bluest blue; one band -> grey."""
    x = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0)
    w = [BAND_WEIGHTS.get(b, 1.0) for b in bands]
    if x.shape[0] == 1:
        return x[0], x[0], x[0]
    if x.shape[0] == 2:
        return x[1] * w[1], 0.5 * (x[0] * w[0] + x[1] * w[1]), x[0] * w[0]
    mid = x.shape[0] // 2
    return x[-1] * w[-1], x[mid] * w[mid], x[0] * w[0]


MIN_STRETCH = 1e-3  # nanomaggies


def to_rgb(pixels: np.ndarray, bands: Sequence[str], stretch: float = 0.5, q: float = 8.0) -> np.ndarray:
    """(C, H, W) flux in nanomaggies -> (H, W, 3) uint8, north up (row 0 at the top).

    A stretch below 1e-3 nanomaggies overflows the Lupton asinh into undefined bytes: refused.
    """
    if not (MIN_STRETCH <= stretch < float("inf")) or not (0 <= q < float("inf")):
        raise ValueError(f"stretch must be in [{MIN_STRETCH:g}, inf) and Q >= 0, got stretch={stretch}, Q={q}")
    r, g, b = rgb_planes(pixels, bands)
    rgb = make_lupton_rgb(r, g, b, minimum=0.0, stretch=stretch, Q=q)
    return np.ascontiguousarray(rgb[::-1])  # FITS row 0 is the bottom (south); images draw top-down


def display_rgb(pixels: np.ndarray, bands: Sequence[str], units: SurveyUnits) -> np.ndarray:
    """(C, H, W) display values (survey.units kind "display") -> (H, W, 3) uint8 as the source image
    showed them: no second stretch, red/green/blue from the bands ingest read as R,G,B."""
    full = DISPLAY_UNITS.get(units.per_band[0].units.lower(), 1.0)
    x = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0) / full
    if units.rgb and len(units.rgb) == 3 and set(units.rgb) <= set(bands):
        planes = [x[list(bands).index(b)] for b in units.rgb]
    elif x.shape[0] == 1:
        planes = [x[0]] * 3
    else:
        planes = [x[-1], x[x.shape[0] // 2], x[0]]
    rgb = np.clip(np.stack(planes, axis=-1) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[::-1])  # row 0 is the bottom; images draw top-down


def png_bytes(
    pixels: np.ndarray, bands: Sequence[str], size_px: int | None = None, stretch: float = 0.5, q: float = 8.0,
    units: SurveyUnits | None = None,
) -> bytes:
    """PNG of a cutout: Lupton composite of flux, or the display values as they are (units kind display)."""
    shown = display_rgb(pixels, bands, units) if units is not None and units.kind == "display" else \
        to_rgb(pixels, bands, stretch, q)
    img = Image.fromarray(shown)
    if size_px and size_px != img.width:
        img = img.resize(
            (size_px, size_px), Image.Resampling.NEAREST if size_px > img.width else Image.Resampling.LANCZOS
        )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def contact_sheet(
    stamps: Sequence[np.ndarray],
    bands: Sequence[str],
    columns: int = 8,
    scale: int = 2,
    stretch: float = 0.5,
    q: float = 8.0,
) -> Image.Image:
    """A grid of colour stamps (each (C, H, W)), enlarged `scale` times."""
    rgbs = [to_rgb(s, bands, stretch, q) for s in stamps]
    h, w = rgbs[0].shape[:2]
    rows = (len(rgbs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w * scale + (columns - 1) * 2, rows * h * scale + (rows - 1) * 2), "white")
    for i, rgb in enumerate(rgbs):
        tile = Image.fromarray(rgb).resize((w * scale, h * scale), Image.Resampling.NEAREST)
        sheet.paste(tile, ((i % columns) * (w * scale + 2), (i // columns) * (h * scale + 2)))
    return sheet
