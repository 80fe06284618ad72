"""GalSim renderings of each galaxy class and of stars.

Each class is a sum of GalSim profiles with per-band fluxes (colour gradients: bulges redder,
arms and knots bluer), sheared to its axis ratio, convolved with the object's own Moffat PSF per
band and drawn on the survey's pixel grid. Spiral arms are star-forming knots laid along two
logarithmic spirals (GalSim has no spiral profile); irregulars are `RandomKnots`; edge-on disks
are `InclinedExponential`. All randomness comes from the per-object seed, so an object looks the
same whatever worker draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import galsim
import numpy as np

GSPARAMS = galsim.GSParams(maximum_fft_size=4096, folding_threshold=1e-2)


def _band_fluxes(flux_r: float, g_r: float, r_z: float, bands: Sequence[str], shift: float = 0.0) -> np.ndarray:
    """Per-band flux (nmgy) of a component with colours g-r, r-z; `shift` reddens (>0) g-r."""
    table = {"g": flux_r * 10 ** (-0.4 * (g_r + shift)), "r": flux_r, "z": flux_r * 10 ** (0.4 * (r_z + shift))}
    table.setdefault("i", np.sqrt(table["r"] * table["z"]))
    table.setdefault("u", table["g"] * 10 ** (-0.4 * (0.8 + g_r)))
    return np.array([table[b] for b in bands])


def _spiral_knots(rng: np.random.Generator, hlr: float, n_arms: int, n_per_arm: int) -> list[tuple[float, float, float]]:
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


def _knot_sum(knots: list[tuple[float, float, float]]) -> galsim.GSObject:
    parts = [galsim.Gaussian(sigma=s, flux=1.0, gsparams=GSPARAMS).shift(x, y) for x, y, s in knots]
    return galsim.Add(parts).withFlux(1.0)


def galaxy_components(kind: str, p: dict[str, Any], rng: np.random.Generator) -> list[tuple[galsim.GSObject, float]]:
    """Unit-flux profiles with their colour shift (added to g-r) and flux fraction, for one galaxy.

    p holds hlr (arcsec), q, beta_deg; returns [(profile * fraction, colour_shift)].
    """
    hlr, q, beta = p["hlr"], p["q"], p["beta_deg"] * galsim.degrees

    def sheared(obj: galsim.GSObject, qq: float = q) -> galsim.GSObject:
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
        arms = _knot_sum(_spiral_knots(rng, hlr, int(rng.choice([2, 2, 3])), int(rng.integers(18, 30))))
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
                (_knot_sum(tail), 0.12, -0.05)]
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
    for c, band in enumerate(bands):
        profile = galsim.Add([
            obj.withFlux(frac * _band_fluxes(params["flux_r"], params["g_r"], params["r_z"], [band], shift)[0])
            for obj, frac, shift in comps
        ])
        psf = galsim.Moffat(beta=3.5, fwhm=float(psf_fwhm_arcsec[c]), gsparams=GSPARAMS)
        img = galsim.Convolve(profile, psf, gsparams=GSPARAMS).drawImage(
            nx=size_px, ny=size_px, scale=pixel_scale_arcsec, offset=offset
        )
        out[c] = img.array
    return out
