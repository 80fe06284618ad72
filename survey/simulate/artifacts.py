"""Instrumental artifacts painted onto already noisy cutouts: the anomalies a similarity search
should surface (and a survey's data engineer should flag).

``add_artifact(image, kind, rng, pixel_scale_arcsec=..., noise_sigma=...)`` returns a new float32
``(C, H, W)`` image in nanomaggies per pixel; the input is never modified. Amplitudes are set in
units of each band's sky noise sigma (nanomaggies per pixel), so an artifact is equally visible at
any survey depth. What each kind looks like:

- ``satellite_trail``: a straight line across the whole stamp at a random angle and offset, with a
  Gaussian cross-section of FWHM 1-2.5 px and peak 3-30 sigma. In 60 % of draws it is in ONE band
  only (a satellite crosses during a single exposure, and coadds are per band); otherwise in every
  band with an independent amplitude per band.
- ``cosmic_ray``: 1-4 sharp, unconvolved hits in ONE band only: single pixels, 2x2 blobs or
  straight tracks 3-15 px long, each pixel 20-200 sigma.
- ``bad_column``: 1-3 adjacent full-height columns in ONE band set to one constant: 0 (dead) or a
  very high value, 50-500 sigma (hot).
- ``saturation_bleed``: a very bright star (Moffat, beta=3.5, FWHM 0.9-1.6 arcsec) centred within a
  few pixels of a stamp edge, in every band; pixels above the saturation level are clipped to it,
  and the excess charge of each column bleeds vertically (along the column, the CCD readout
  direction) as a trail held at the saturation level.
- ``ghost``: a large faint doughnut from an internal reflection, outer radius 10-25 px with a
  central hole of 35-65 % of it, soft edges, 0.4-1.0 sigma per pixel in every band: invisible per
  pixel, many sigma summed over its hundreds of pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["ARTIFACT_KINDS", "add_artifact"]

ARTIFACT_KINDS = ("satellite_trail", "cosmic_ray", "bad_column", "saturation_bleed", "ghost")


def add_artifact(
    image: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    *,
    pixel_scale_arcsec: float,
    noise_sigma: Sequence[float],
) -> np.ndarray:
    """Return a copy of ``image`` with one artifact of ``kind`` added.

    Args:
        image: ``(C, H, W)`` noisy cutout, nanomaggies per pixel. Not modified.
        kind: one of ``ARTIFACT_KINDS``.
        rng: the only source of randomness; the same state gives the same artifact.
        pixel_scale_arcsec: arcsec per pixel (sets the star's PSF width in pixels).
        noise_sigma: sky noise per band, nanomaggies per pixel; amplitudes scale with it.

    Returns:
        A new float32 ``(C, H, W)`` array.

    Raises:
        ValueError: unknown ``kind``, an image that is not ``(C, H, W)``, or a ``noise_sigma``
        whose length is not C.
    """
    if kind not in _PAINTERS:
        raise ValueError(
            f"unknown artifact kind {kind!r}; valid kinds: {', '.join(ARTIFACT_KINDS)}"
        )
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    sigma = np.asarray(noise_sigma, dtype=np.float64)
    if sigma.shape != (image.shape[0],):
        raise ValueError(f"noise_sigma has {sigma.size} values for {image.shape[0]} bands")
    if np.any(sigma <= 0):
        raise ValueError(f"noise_sigma must be positive, got {list(sigma)}")
    out = image.astype(np.float32, copy=True)
    _PAINTERS[kind](out, rng, sigma, float(pixel_scale_arcsec))
    return out


# Each painter edits ``out`` (C, H, W) in place; sigma is (C,) in nanomaggies per pixel.


def _satellite_trail(
    out: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, _: float
) -> None:
    n_bands, h, w = out.shape
    angle = rng.uniform(0.0, np.pi)
    offset = rng.uniform(-0.4, 0.4) * min(h, w)  # perpendicular distance from the stamp centre, px
    fwhm_px = rng.uniform(1.0, 2.5)
    yy, xx = _pixel_coords(h, w)
    dist = xx * -np.sin(angle) + yy * np.cos(angle) - offset  # signed distance to the line, px
    profile = np.exp(-0.5 * (dist / (fwhm_px / 2.3548)) ** 2)
    if rng.uniform() < 0.6:
        amplitude = np.zeros(n_bands)
        amplitude[rng.integers(n_bands)] = rng.uniform(3.0, 30.0)
    else:
        amplitude = rng.uniform(3.0, 30.0, size=n_bands)
    out += (amplitude * sigma)[:, None, None].astype(np.float32) * profile[None].astype(np.float32)


def _cosmic_ray(out: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, _: float) -> None:
    n_bands, h, w = out.shape
    band = rng.integers(n_bands)
    for _hit in range(rng.integers(1, 5)):
        y0, x0 = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
        shape = rng.choice(["pixel", "blob", "track"], p=[0.3, 0.2, 0.5])
        if shape == "pixel":
            ys, xs = np.array([round(y0)]), np.array([round(x0)])
        elif shape == "blob":
            ys = np.array([0, 0, 1, 1]) + min(int(y0), h - 2)
            xs = np.array([0, 1, 0, 1]) + min(int(x0), w - 2)
        else:  # a straight track, rasterised by sampling every quarter pixel
            length, angle = rng.uniform(3.0, 15.0), rng.uniform(0.0, np.pi)
            t = np.arange(0.0, length + 0.25, 0.25)
            ys = np.clip(np.round(y0 + t * np.sin(angle)), 0, h - 1).astype(int)
            xs = np.clip(np.round(x0 + t * np.cos(angle)), 0, w - 1).astype(int)
            ys, xs = np.unique(np.stack([ys, xs]), axis=1)
        out[band, ys, xs] += (rng.uniform(20.0, 200.0, size=ys.size) * sigma[band]).astype(
            np.float32
        )


def _bad_column(out: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, _: float) -> None:
    n_bands, _h, w = out.shape
    band = rng.integers(n_bands)
    n_cols = int(rng.integers(1, 4))
    x0 = int(rng.integers(0, w - n_cols + 1))
    value = 0.0 if rng.uniform() < 0.5 else rng.uniform(50.0, 500.0) * sigma[band]
    out[band, :, x0 : x0 + n_cols] = np.float32(value)


def _saturation_bleed(
    out: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, pixel_scale_arcsec: float
) -> None:
    n_bands, h, w = out.shape
    # Star centre within a few pixels of one edge (possibly just outside it), anywhere along it.
    inset = rng.uniform(-3.0, 6.0)
    along = rng.uniform(0.1, 0.9)
    edge = rng.integers(4)
    if edge == 0:
        yc, xc = inset, along * (w - 1)
    elif edge == 1:
        yc, xc = h - 1 - inset, along * (w - 1)
    elif edge == 2:
        yc, xc = along * (h - 1), inset
    else:
        yc, xc = along * (h - 1), w - 1 - inset
    fwhm_px = rng.uniform(0.9, 1.6) / pixel_scale_arcsec
    beta = 3.5
    alpha = fwhm_px / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    moffat_peak1 = (1.0 + ((yy - yc) ** 2 + (xx - xc) ** 2) / alpha**2) ** -beta  # peak 1 at centre
    # Saturation ~ 30-60 nmgy/pixel (a DECam exposure's full well), never below 200 sigma.
    saturation = np.maximum(rng.uniform(30.0, 60.0), 200.0 * sigma)
    colour = rng.uniform(0.6, 1.6, size=n_bands)  # per-band flux relative to the brightest
    peak = rng.uniform(5.0, 50.0) * saturation * colour  # peak before clipping, nmgy/pixel
    for c in range(n_bands):
        star = out[c] + peak[c] * moffat_peak1
        excess = np.clip(star - saturation[c], 0.0, None)
        saturated = excess > 0
        # Each column's excess charge spills along the column, up and down from the core,
        # filling ceil(excess / saturation) pixels at the saturation level (truncated at the edges).
        spill = np.ceil(excess.sum(axis=0) / saturation[c] / 2.0).astype(int)
        for x in np.flatnonzero(spill):
            rows = np.flatnonzero(saturated[:, x])
            saturated[max(rows[0] - spill[x], 0) : rows[-1] + spill[x] + 1, x] = True
        star[saturated] = saturation[c]
        out[c] = star.astype(np.float32)


def _ghost(out: np.ndarray, rng: np.random.Generator, sigma: np.ndarray, _: float) -> None:
    n_bands, h, w = out.shape
    r_out = rng.uniform(10.0, 25.0)
    r_in = r_out * rng.uniform(0.35, 0.65)
    yc, xc = rng.uniform(0.2, 0.8) * (h - 1), rng.uniform(0.2, 0.8) * (w - 1)
    yy, xx = _pixel_coords(h, w)
    r = np.hypot(yy + (h - 1) / 2.0 - yc, xx + (w - 1) / 2.0 - xc)
    edge_px = 1.0  # logistic softening of both rims
    ring = 1.0 / (1.0 + np.exp((r - r_out) / edge_px)) / (1.0 + np.exp((r_in - r) / edge_px))
    amplitude = rng.uniform(0.4, 1.0, size=n_bands) * sigma
    out += (amplitude[:, None, None] * ring[None]).astype(np.float32)


def _pixel_coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel offsets from the stamp's geometric centre, each (H, W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy - (h - 1) / 2.0, xx - (w - 1) / 2.0


_PAINTERS: dict[str, Callable[[np.ndarray, np.random.Generator, np.ndarray, float], None]] = {
    "satellite_trail": _satellite_trail,
    "cosmic_ray": _cosmic_ray,
    "bad_column": _bad_column,
    "saturation_bleed": _saturation_bleed,
    "ghost": _ghost,
}
