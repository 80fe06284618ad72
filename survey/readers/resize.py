"""Bring stamps of different sizes and pixel scales to one grid (for FITS stamps, image folders).

Arrays are (C, H, W) float32. Centring convention: the stamp centre is pixel ((H-1)/2, (W-1)/2);
cropping or padding keeps it there to within half a pixel (exact when H - size is even).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..cutout import Cutout


def pad_crop(pixels: np.ndarray, size_px: int, fill: float = np.nan) -> np.ndarray:
    """Centre-crop or pad (C, H, W) to (C, size_px, size_px).

    Padding uses `fill`, NaN by default: the pixels are unknown, and NaN is how skysift marks
    pixels without data (the same as off-image pixels of a mosaic cutout).
    """
    if size_px <= 0:
        raise ValueError(f"size_px must be positive, got {size_px}")
    c, h, w = pixels.shape
    out = np.full((c, size_px, size_px), fill, dtype=np.float32)
    # Source window [y0, y0+n) lands at [t0, t0+n) of the output, per axis.
    (y0, ty, ny), (x0, tx, nx) = _window(h, size_px), _window(w, size_px)
    out[:, ty : ty + ny, tx : tx + nx] = pixels[:, y0 : y0 + ny, x0 : x0 + nx]
    return out


def resample(pixels: np.ndarray, from_scale: float, to_scale: float, order: int = 1) -> np.ndarray:
    """Resample (C, H, W) from `from_scale` to `to_scale` arcsec/px, conserving total flux.

    Interpolation (scipy.ndimage.zoom, spline `order`) samples surface brightness; multiplying by
    (to_scale / from_scale)**2 turns it back into flux per (new, larger or smaller) pixel. NaN
    pixels spread to their interpolation neighbours. No PSF matching or anti-aliasing: going to a
    much coarser scale aliases noise; smooth first if that matters.
    """
    if from_scale <= 0 or to_scale <= 0:
        raise ValueError(f"pixel scales must be positive, got {from_scale} -> {to_scale}")
    if np.isclose(from_scale, to_scale, rtol=1e-6):
        return pixels.astype(np.float32, copy=False)
    factor = from_scale / to_scale
    zoomed = ndimage.zoom(
        pixels, (1.0, factor, factor), order=order, mode="nearest", grid_mode=True
    )
    return (zoomed * (to_scale / from_scale) ** 2).astype(np.float32)


def to_common(cutout: Cutout, size_px: int, pixel_scale_arcsec: float | None = None) -> Cutout:
    """Resample to `pixel_scale_arcsec` (if given), then pad-crop to size_px x size_px."""
    pixels, scale = cutout.pixels, cutout.pixel_scale_arcsec
    if pixel_scale_arcsec is not None:
        pixels, scale = resample(pixels, scale, pixel_scale_arcsec), pixel_scale_arcsec
    return replace(cutout, pixels=pad_crop(pixels, size_px), pixel_scale_arcsec=scale)


def _window(n: int, size: int) -> tuple[int, int, int]:
    """(source start, target start, length) centring an axis of length n in one of `size`."""
    if n >= size:
        return (n - size) // 2, 0, size
    return 0, (size - n) // 2, n
