"""Population physics for the simulated survey: redshifts, luminosities, sizes, colours, sky.

Why these choices: photo-z from pixels must be a real, learnable task, and classes must differ the
way real galaxies do. So apparent size follows the angular-diameter distance and flux the
luminosity distance (astropy.cosmology, flat LCDM H0=70, Om0=0.3), the catalogue is magnitude
limited (which shapes the redshift distribution the way a real flux-limited sample is shaped),
and colours depend on type and redshift (the 4000 A break moving from g into r makes early types
redder with z). Numbers are loose fits to DECaLS-like imaging, not a survey model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Type -> (fraction, M_r mean, M_r sigma, log10 r_e[kpc] mean, sigma). Stars are handled apart.
GALAXY_TYPES: dict[str, tuple[float, float, float, float, float]] = {
    "elliptical": (0.20, -21.6, 0.6, 0.55, 0.15),
    "lenticular": (0.15, -21.2, 0.6, 0.50, 0.15),
    "spiral": (0.25, -21.2, 0.7, 0.85, 0.12),
    "edge_on": (0.12, -20.8, 0.7, 0.70, 0.15),
    "irregular": (0.12, -19.8, 0.7, 0.45, 0.15),
    "merger": (0.08, -21.6, 0.6, 0.65, 0.15),
}
STAR_FRACTION = 0.08
CLASSES: tuple[str, ...] = (*GALAXY_TYPES, "star")

# Observed-frame colour model: (g-r at z=0, d(g-r)/dz, r-z at z=0, d(r-z)/dz).
COLOURS = {
    "elliptical": (0.75, 1.10, 0.45, 1.00),
    "lenticular": (0.65, 0.90, 0.40, 0.85),
    "spiral": (0.45, 0.60, 0.30, 0.60),
    "edge_on": (0.55, 0.70, 0.40, 0.70),
    "irregular": (0.30, 0.35, 0.20, 0.35),
    "merger": (0.55, 0.80, 0.38, 0.75),
}

# Median seeing (arcsec FWHM, r band) and 5-sigma point-source depth (AB mag), DECaLS-like.
SEEING_R_ARCSEC = 1.25
SEEING_BAND_FACTOR = {"g": 1.08, "r": 1.0, "z": 0.92}
DEPTH_MAG = {"g": 24.0, "r": 23.4, "z": 22.5}
ZEROPOINT = 22.5  # nanomaggies: flux = 10 ** (-0.4 * (mag - 22.5))


def mag_to_nmgy(mag: np.ndarray | float) -> np.ndarray:
    return np.power(10.0, -0.4 * (np.asarray(mag, dtype=np.float64) - ZEROPOINT))


@lru_cache(maxsize=1)
def _distance_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """z grid -> distance modulus and kpc per arcsec; interpolated (astropy per object is slow)."""
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    z = np.linspace(0.005, 3.0, 1200)
    mu = cosmo.distmod(z).value
    kpc_per_arcsec = cosmo.kpc_proper_per_arcmin(z).value / 60.0
    dvdz = cosmo.differential_comoving_volume(z).value
    return z, mu, kpc_per_arcsec, dvdz


def distance_modulus(z: np.ndarray) -> np.ndarray:
    zg, mu, _, _ = _distance_tables()
    return np.interp(z, zg, mu)


def kpc_per_arcsec(z: np.ndarray) -> np.ndarray:
    zg, _, k, _ = _distance_tables()
    return np.interp(z, zg, k)


def draw_redshift_and_mag(
    rng: np.random.Generator, kind: str, n: int, z_min: float, z_max: float, mag_limit_r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (z, M_r, m_r) for a magnitude-limited sample: z from the comoving volume, M from the
    type's luminosity function, kept if m_r < limit (rejection; only scalars, so it is cheap)."""
    zg, _, _, dvdz = _distance_tables()
    sel = (zg >= z_min) & (zg <= z_max)
    cdf = np.cumsum(dvdz[sel])
    cdf /= cdf[-1]
    _, m_mean, m_sig, _, _ = GALAXY_TYPES[kind]
    zs, ms, apps = [], [], []
    need = n
    while need > 0:
        m = max(4 * need, 1024)
        z = np.interp(rng.random(m), cdf, zg[sel])
        big_m = rng.normal(m_mean, m_sig, m)
        app = big_m + distance_modulus(z) - 2.5 * np.log10(1 + z) * 0.0  # no K-correction in r
        keep = app < mag_limit_r
        zs.append(z[keep][:need])
        ms.append(big_m[keep][:need])
        apps.append(app[keep][:need])
        need -= int(min(keep.sum(), need))
    return np.concatenate(zs), np.concatenate(ms), np.concatenate(apps)


def half_light_radius_arcsec(rng: np.random.Generator, kind: str, z: np.ndarray, abs_mag: np.ndarray) -> np.ndarray:
    """Size-luminosity relation (brighter is bigger), then kpc -> arcsec at z."""
    _, m_mean, _, lr_mean, lr_sig = GALAXY_TYPES[kind]
    log_re = lr_mean - 0.15 * (abs_mag - m_mean) + rng.normal(0, lr_sig, len(z))
    return np.clip(10**log_re / kpc_per_arcsec(z), 0.25, 8.0)


def colours(rng: np.random.Generator, kind: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gr0, dgr, rz0, drz = COLOURS[kind]
    # The break leaves g around z~0.45: the g-r slope flattens beyond it.
    zeff = np.minimum(z, 0.45) + 0.3 * np.maximum(z - 0.45, 0)
    g_r = gr0 + dgr * zeff + rng.normal(0, 0.05, len(z))
    r_z = rz0 + drz * z + rng.normal(0, 0.05, len(z))
    return g_r, r_z


def toy_dust_map(ra: np.ndarray, dec: np.ndarray, seed: int) -> np.ndarray:
    """A smooth E(B-V) field over the footprint (mag): a few random long-wavelength modes, so
    neighbours on the sky share reddening the way they do under the real Galactic dust."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD057]))
    field = np.zeros_like(ra, dtype=np.float64)
    for _ in range(6):
        kx, ky = rng.uniform(0.1, 0.6, 2)
        ph = rng.uniform(0, 2 * np.pi)
        field += np.sin(kx * ra + ky * dec + ph)
    return 0.01 + 0.12 * (field / 6 + 0.5).clip(0, None) ** 2


def point_source_noise_sigma(depth_mag: np.ndarray, fwhm_arcsec: np.ndarray, pixel_scale: float) -> np.ndarray:
    """Per-pixel sky sigma (nmgy) such that a point source of magnitude `depth_mag` is 5 sigma
    (Gaussian-PSF effective area 4 pi sigma_psf^2)."""
    sigma_px = fwhm_arcsec / 2.3548 / pixel_scale
    n_eff = 4 * np.pi * sigma_px**2
    return mag_to_nmgy(depth_mag) / (5 * np.sqrt(n_eff))


@dataclass(frozen=True)
class Conditions:
    """Per-object observing conditions, (N, C) arrays in band order."""

    psf_fwhm_arcsec: np.ndarray
    depth_mag: np.ndarray
    noise_sigma: np.ndarray


def draw_conditions(rng: np.random.Generator, n: int, bands: tuple[str, ...], pixel_scale: float) -> Conditions:
    seeing_r = SEEING_R_ARCSEC * np.exp(rng.normal(0, 0.18, n))
    fwhm = np.stack([seeing_r * SEEING_BAND_FACTOR.get(b, 1.0) * np.exp(rng.normal(0, 0.04, n)) for b in bands], 1)
    depth = np.stack([DEPTH_MAG.get(b, 23.0) + rng.normal(0, 0.3, n) for b in bands], 1)
    return Conditions(fwhm, depth, point_source_noise_sigma(depth, fwhm, pixel_scale))
