"""GalSim renderings of each galaxy class and of stars.

Each class is a sum of GalSim profiles with per-band fluxes (colour gradients: bulges redder,
arms and knots bluer), sheared to its axis ratio, convolved with the object's own Moffat PSF per
band and drawn on the survey's pixel grid. Spiral arms are star-forming knots laid along two
logarithmic spirals (GalSim has no spiral profile); irregulars are `RandomKnots`; edge-on disks
are `InclinedExponential`. All randomness comes from the per-object seed, so an object looks the
same whatever worker draws it.

Knot sets (spiral arms, merger tails) are drawn with numpy, not as a GalSim `Sum` of shifted
Gaussians: a Sum of ~60 profiles cost ~80 ms per band (GalSim evaluates every component on the
k-grid through Python-level transformations), 5x the rest of the galaxy. A round Gaussian knot is
separable, so its pixel integral is a product of two erf differences and the whole set is one
(H, K) @ (K, W) matrix product, convolved with the band's Moffat PSF by FFT (`Knots.draw`).
Knots stay round under the galaxy's shear (their positions are sheared): they are 0.1-0.4"
across, below the seeing, so the difference is invisible after the PSF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import galsim
import numpy as np
from scipy.signal import fftconvolve
from scipy.special import erf

GSPARAMS = galsim.GSParams(maximum_fft_size=4096, folding_threshold=1e-2)


def _band_fluxes(flux_r: float, g_r: float, r_z: float, bands: Sequence[str], shift: float = 0.0) -> np.ndarray:
    """Per-band flux (nmgy) of a component with colours g-r, r-z; `shift` reddens (>0) g-r."""
    table = {"g": flux_r * 10 ** (-0.4 * (g_r + shift)), "r": flux_r, "z": flux_r * 10 ** (0.4 * (r_z + shift))}
    table.setdefault("i", np.sqrt(table["r"] * table["z"]))
    table.setdefault("u", table["g"] * 10 ** (-0.4 * (0.8 + g_r)))
    return np.array([table[b] for b in bands])


def _spiral_knots(
    rng: np.random.Generator, hlr: float, n_arms: int, n_per_arm: int
) -> list[tuple[float, float, float]]:
    """(x, y, sigma) arcsec of knots along logarithmic spirals r = a exp(b phi)."""
    pitch = np.deg2rad(rng.uniform(12, 28))
    b = np.tan(pitch)
    phase0 = rng.uniform(0, 2 * np.pi)
    knots = []
    for arm in range(n_arms):
        phi = np.sort(rng.uniform(0.3, 2.6 * np.pi / n_arms * 1.6, n_per_arm))
        r = 0.35 * hlr * np.exp(b * phi)
        r = np.clip(r, 0, 2.2 * hlr)
        ang = phi + phase0 + 2 * np.pi * arm / n_arms
        jitter = rng.normal(0, 0.05 * hlr, (2, n_per_arm))
        for xi, yi in zip(r * np.cos(ang) + jitter[0], r * np.sin(ang) + jitter[1], strict=True):
            knots.append((float(xi), float(yi), float(rng.uniform(0.10, 0.2) * max(hlr, 0.6))))
    return knots


@dataclass(frozen=True)
class Knots:
    """A unit-flux set of equal-flux round Gaussian knots: x, y, sigma in arcsec from the galaxy
    centre (x along image columns, y along rows), drawn with numpy by `draw`."""

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray

    def shear(self, q: float, beta: galsim.Angle) -> Knots:
        """Move the knots as GalSim's `shear(q=, beta=)` moves a profile (area-preserving)."""
        m = galsim.Shear(q=q, beta=beta).getMatrix()
        return Knots(m[0, 0] * self.x + m[0, 1] * self.y, m[1, 0] * self.x + m[1, 1] * self.y, self.sigma)

    def draw(self, size_px: int, pixel_scale_arcsec: float, pad_px: int, offset: tuple[float, float]) -> np.ndarray:
        """(size_px + 2 pad_px)^2 float64 image of unit total flux (less what falls off it),
        pixel-integrated, NOT PSF-convolved, centred like GalSim's drawImage: the stamp centre
        ((W-1)/2, (H-1)/2) 0-based, shifted by `offset` (dx, dy) pixels. The padding lets a
        'valid' convolution with a kernel of half-size <= pad_px bring in light from off the stamp."""
        n = size_px + 2 * pad_px
        centre = (n - 1) / 2.0
        edges = np.arange(n + 1) - 0.5  # pixel edges, px
        s = np.maximum(self.sigma / pixel_scale_arcsec, 1e-3)[:, None] * np.sqrt(2.0)
        xc = (self.x / pixel_scale_arcsec + offset[0] + centre)[:, None]
        yc = (self.y / pixel_scale_arcsec + offset[1] + centre)[:, None]
        px = np.diff(0.5 * erf((edges[None] - xc) / s), axis=1)  # (K, W) pixel integrals along x
        py = np.diff(0.5 * erf((edges[None] - yc) / s), axis=1)  # (K, H)
        return np.einsum("kh,kw->hw", py, px) / len(self.x)  # einsum: no BLAS threads for a tiny product


def _knot_set(knots: list[tuple[float, float, float]]) -> Knots:
    a = np.asarray(knots, dtype=np.float64).reshape(-1, 3)
    return Knots(a[:, 0], a[:, 1], a[:, 2])


def moffat_kernel(fwhm_arcsec: float, pixel_scale_arcsec: float) -> np.ndarray:
    """Moffat(beta=3.5) sampled at pixel centres (the knots are already pixel-integrated), odd
    size covering +-3 FWHM, normalised to sum 1."""
    half = int(np.ceil(3.0 * fwhm_arcsec / pixel_scale_arcsec))
    psf = galsim.Moffat(beta=3.5, fwhm=fwhm_arcsec, gsparams=GSPARAMS)
    k = psf.drawImage(nx=2 * half + 1, ny=2 * half + 1, scale=pixel_scale_arcsec, method="no_pixel").array
    return k / k.sum()


Component = tuple[galsim.GSObject | Knots, float, float]


def galaxy_components(kind: str, p: dict[str, Any], rng: np.random.Generator) -> list[Component]:
    """Unit-flux profiles of one galaxy with their flux fraction and colour shift (added to g-r).

    p holds hlr (arcsec), q, beta_deg; returns [(unit-flux profile or Knots, fraction, colour_shift)].
    """
    hlr, q, beta = p["hlr"], p["q"], p["beta_deg"] * galsim.degrees

    def sheared(obj: Any, qq: float = q) -> Any:
        return obj.shear(q=qq, beta=beta)

    if kind == "elliptical":
        return [(sheared(galsim.DeVaucouleurs(half_light_radius=hlr, trunc=8 * hlr, gsparams=GSPARAMS)), 1.0, 0.0)]
    if kind == "lenticular":
        bt = rng.uniform(0.3, 0.55)
        bulge = galsim.DeVaucouleurs(half_light_radius=0.5 * hlr, trunc=8 * hlr, gsparams=GSPARAMS)
        disk = galsim.Exponential(half_light_radius=1.3 * hlr, gsparams=GSPARAMS)
        return [(sheared(bulge, min(1.0, q + 0.25)), bt, 0.08), (sheared(disk), 1 - bt, -0.08)]
    if kind == "spiral":
        bt = rng.uniform(0.08, 0.25)
        arm_frac = rng.uniform(0.5, 0.7)
        bulge = galsim.DeVaucouleurs(half_light_radius=0.35 * hlr, trunc=8 * hlr, gsparams=GSPARAMS)
        disk = galsim.Exponential(half_light_radius=1.1 * hlr, gsparams=GSPARAMS)
        arms = _knot_set(_spiral_knots(rng, hlr, int(rng.choice([2, 2, 3])), int(rng.integers(18, 30))))
        return [
            (sheared(bulge, min(1.0, q + 0.2)), bt, 0.25),
            (sheared(disk), (1 - bt) * (1 - arm_frac), 0.0),
            (sheared(arms), (1 - bt) * arm_frac, -0.25),
        ]
    if kind == "edge_on":
        scale_radius = hlr / 1.678
        disk = galsim.InclinedExponential(
            inclination=rng.uniform(82, 90) * galsim.degrees, scale_radius=scale_radius,
            scale_height=scale_radius * rng.uniform(0.07, 0.14), gsparams=GSPARAMS,
        ).rotate(beta)
        bt = rng.uniform(0.05, 0.2)
        bulge = galsim.DeVaucouleurs(half_light_radius=0.3 * hlr, trunc=8 * hlr, gsparams=GSPARAMS)
        return [(disk, 1 - bt, -0.03), (bulge.shear(q=0.8, beta=beta), bt, 0.2)]
    if kind == "irregular":
        knots = galsim.RandomKnots(
            npoints=int(rng.integers(8, 25)), half_light_radius=1.2 * hlr, flux=1.0,
            rng=galsim.BaseDeviate(int(rng.integers(1, 2**31))), gsparams=GSPARAMS,
        )
        smooth = galsim.Exponential(half_light_radius=hlr, gsparams=GSPARAMS)
        return [(knots.shear(q=q, beta=beta), 0.7, -0.1), (sheared(smooth), 0.3, 0.1)]
    if kind == "merger":
        sep = rng.uniform(0.8, 1.8) * hlr
        ang = rng.uniform(0, 2 * np.pi)
        ratio = rng.uniform(0.35, 1.0)
        a = galsim.DeVaucouleurs(half_light_radius=0.7 * hlr, trunc=8 * hlr, gsparams=GSPARAMS).shear(q=q, beta=beta)
        b = galsim.Exponential(half_light_radius=0.8 * hlr, gsparams=GSPARAMS).shear(
            q=rng.uniform(0.4, 0.9), beta=rng.uniform(0, 180) * galsim.degrees
        )
        dx, dy = 0.5 * sep * np.cos(ang), 0.5 * sep * np.sin(ang)
        # A tidal tail: faint knots along an arc leaving the secondary.
        t = np.linspace(0.2, 1.4, 10)
        curl = rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
        tail = [(float(-dx + 1.6 * hlr * ti * np.cos(ang + np.pi + curl * ti)),
                 float(-dy + 1.6 * hlr * ti * np.sin(ang + np.pi + curl * ti)), 0.35 * max(hlr, 0.5)) for ti in t]
        f_a = 1 / (1 + ratio)
        return [(a.shift(dx, dy), 0.88 * f_a, 0.1), (b.shift(-dx, -dy), 0.88 * (1 - f_a), -0.1),
                (_knot_set(tail), 0.12, -0.05)]
    raise ValueError(f"unknown galaxy kind {kind!r}")


def render_object(
    kind: str,
    params: dict[str, Any],
    bands: Sequence[str],
    size_px: int,
    pixel_scale_arcsec: float,
    psf_fwhm_arcsec: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Noiseless, unreddened image (C, H, W) in nanomaggies of one star or galaxy.

    params: flux_r (nmgy), g_r, r_z, and for galaxies hlr (arcsec), q, beta_deg; offsets dx, dy
    (pixels) place the centroid off the stamp centre by sub-pixel amounts, as a detection would.
    """
    rng = np.random.default_rng(seed)
    if kind == "star":
        comps = [(galsim.DeltaFunction(flux=1.0), 1.0, 0.0)]
    else:
        comps = galaxy_components(kind, params, rng)
    out = np.empty((len(bands), size_px, size_px), dtype=np.float32)
    offset = (params.get("dx", 0.0), params.get("dy", 0.0))
    knots = [i for i, (obj, _, _) in enumerate(comps) if isinstance(obj, Knots)]
    if knots:  # knot images are the same in every band but for the PSF: draw them once, padded
        kernels = [moffat_kernel(float(f), pixel_scale_arcsec) for f in psf_fwhm_arcsec]
        pad = max(k.shape[0] for k in kernels) // 2
        knot_img = {i: comps[i][0].draw(size_px, pixel_scale_arcsec, pad, offset) for i in knots}
    for c, band in enumerate(bands):
        flux = [frac * _band_fluxes(params["flux_r"], params["g_r"], params["r_z"], [band], shift)[0]
                for _, frac, shift in comps]
        smooth = [obj.withFlux(f) for (obj, _, _), f in zip(comps, flux, strict=True) if not isinstance(obj, Knots)]
        psf = galsim.Moffat(beta=3.5, fwhm=float(psf_fwhm_arcsec[c]), gsparams=GSPARAMS)
        img = galsim.Convolve(galsim.Add(smooth), psf, gsparams=GSPARAMS).drawImage(
            nx=size_px, ny=size_px, scale=pixel_scale_arcsec, offset=offset
        ).array.astype(np.float64)
        if knots:
            k = kernels[c].shape[0] // 2
            win = slice(pad - k, pad + size_px + k)  # shrink the padding to this band's kernel
            unit = sum(flux[i] * knot_img[i] for i in knots)
            img += fftconvolve(unit[win, win], kernels[c], mode="valid")
        out[c] = img
    return out
