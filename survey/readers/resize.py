"""Bring stamps of different sizes and pixel scales to one grid (for FITS stamps, image folders).

Arrays are (C, H, W) float32. Centring convention: the stamp centre is pixel ((H-1)/2, (W-1)/2);
cropping or padding keeps it there to within half a pixel (exact when H - size is even).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image
from scipy import ndimage

from ..cutout import Cutout

#: Largest side a resampled stamp may have: beyond it the caller forgot to crop first (a 64 px
#: stamp at 1e-3 of the target scale would otherwise ask for a 64,000,000 px side).
MAX_RESAMPLED_SIDE_PX = 16384
#: Largest ratio of two pixel scales resampled between (any plausible pair is within 4e9, see
#: fits_header.MIN_PIXEL_SCALE_ARCSEC); beyond it sizes and flux factors overflow.
MAX_SCALE_RATIO = 1e10


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


def resample(pixels: np.ndarray, from_scale: float, to_scale: float, order: int = 1,
             conserve_flux: bool = True) -> np.ndarray:
    """Resample (C, H, W) from `from_scale` to `to_scale` arcsec/px, conserving total flux.

    Going to finer pixels interpolates (scipy.ndimage.zoom, spline `order`); going to pixels more
    than twice as coarse averages the area each new pixel covers (PIL's box filter), which does
    not alias noise or drop the light between samples, as point sampling of a 424 px stamp shrunk
    to 64 px would. Either samples surface brightness; multiplying by (to_scale / from_scale)**2
    turns it back into flux per (new, larger or smaller) pixel; `conserve_flux=False` skips that for
    values that are not flux (display images: a pixel's value is a brightness on screen). NaN pixels
    spread to their neighbours. The output side is round(side * from_scale / to_scale) for every caller.
    """
    factor = _factor(from_scale, to_scale)
    if np.isclose(from_scale, to_scale, rtol=1e-6):
        return pixels.astype(np.float32, copy=False)
    out_side = max(pixels.shape[-2:], default=0) * factor
    if out_side > MAX_RESAMPLED_SIDE_PX:
        raise ValueError(f"resampling {pixels.shape[-1]}x{pixels.shape[-2]} px from {from_scale:g} to {to_scale:g} "
                         f"arcsec/px would make {out_side:.3g} px a side (limit {MAX_RESAMPLED_SIDE_PX}); "
                         f"crop first (conform does)")
    if factor < 0.5:
        c, h, w = pixels.shape
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(p, dtype=np.float32), mode="F").resize(
            size, Image.Resampling.BOX)) for p in pixels]
        zoomed = np.stack(planes) if planes else np.empty((0, size[1], size[0]), np.float32)
    else:
        zoomed = ndimage.zoom(pixels, (1.0, factor, factor), order=order, mode="nearest", grid_mode=True)
    area = (to_scale / from_scale) ** 2 if conserve_flux else 1.0
    return (zoomed * area).astype(np.float32)


def conform(pixels: np.ndarray, from_scale: float, to_scale: float, size_px: int | None,
            margin_px: int = 4, conserve_flux: bool = True) -> np.ndarray:
    """The one way a stamp reaches a survey's grid (ingest and upload both call it, so an uploaded
    copy of an ingested image lands on exactly the same pixels): crop to what `size_px` output
    pixels cover (plus an interpolation margin, so a large image is never resampled whole), resample
    from `from_scale` to `to_scale`, then centre pad/crop to size_px (None: keep the resampled size).
    """
    if size_px is not None:
        need = int(np.ceil(size_px / _factor(from_scale, to_scale))) + margin_px
        h, w = pixels.shape[-2:]
        if h > need or w > need:
            pixels = pad_crop(pixels, min(max(h, w), need))
    pixels = resample(pixels, from_scale, to_scale, conserve_flux=conserve_flux)
    return pad_crop(pixels, size_px) if size_px is not None else pixels


def _factor(from_scale: float, to_scale: float) -> float:
    """from_scale / to_scale, refusing scales or ratios that are not positive and finite (a
    subnormal scale such as 5e-324 gives an infinite ratio, and sizes computed from it overflow)."""
    if not (0 < from_scale < float("inf") and 0 < to_scale < float("inf")):
        raise ValueError(f"pixel scales must be positive and finite, got {from_scale} -> {to_scale}")
    factor = from_scale / to_scale
    if not (1 / MAX_SCALE_RATIO <= factor <= MAX_SCALE_RATIO):  # also keeps factor**-2 (the flux area) finite
        raise ValueError(f"pixel scales {from_scale:g} -> {to_scale:g} arcsec/px differ by more than a factor of "
                         f"{MAX_SCALE_RATIO:g}")
    return factor


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
