"""Draw the catalogue of a simulated survey: who is where, of what class, at what z, seen how.

Everything is drawn in the parent process, vectorised, from one seed; rendering (per shard, in
workers) then only needs each object's row and its own seed, so the output does not depend on
the number of workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..catalog import Catalog
from . import physics
from .settings import SimSettings


def object_seeds(seed: int, n: int) -> np.ndarray:
    """One independent 63-bit seed per object, from (survey seed, object index)."""
    return np.random.SeedSequence([seed, 0x5EED]).generate_state(n, dtype=np.uint64) >> np.uint64(1)


def draw_population(s: SimSettings) -> Catalog:
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, 0xCA7]))
    n = s.size
    n_lens = int(round(n * s.lens_fraction))
    kinds_rest = [*physics.GALAXY_TYPES, "star"]
    fracs = np.array([v[0] for v in physics.GALAXY_TYPES.values()] + [physics.STAR_FRACTION])
    kind = rng.choice(kinds_rest, size=n - n_lens, p=fracs / fracs.sum()).astype(object)
    kind = np.concatenate([kind, np.array(["lens"] * n_lens, dtype=object)])
    kind = kind[rng.permutation(n)]

    cols: dict[str, np.ndarray] = {
        "z": np.zeros(n), "abs_mag_r": np.zeros(n), "mag_r_intrinsic": np.zeros(n), "hlr_arcsec": np.zeros(n),
        "axis_ratio": np.ones(n), "pa_deg": rng.uniform(0, 180, n), "g_r": np.zeros(n), "r_z": np.zeros(n),
    }
    for k in physics.GALAXY_TYPES:
        sel = np.nonzero(kind == k)[0]
        if not len(sel):
            continue
        z, big_m, app = physics.draw_redshift_and_mag(rng, k, len(sel), s.z_min, s.z_max, s.mag_limit_r)
        cols["z"][sel], cols["abs_mag_r"][sel], cols["mag_r_intrinsic"][sel] = z, big_m, app
        cols["hlr_arcsec"][sel] = physics.half_light_radius_arcsec(rng, k, z, big_m)
        q_range = {"elliptical": (0.65, 1.0), "lenticular": (0.3, 0.65), "spiral": (0.55, 1.0),
                   "edge_on": (0.15, 0.3), "irregular": (0.4, 1.0), "merger": (0.5, 1.0)}[k]
        cols["axis_ratio"][sel] = rng.uniform(*q_range, len(sel))
        cols["g_r"][sel], cols["r_z"][sel] = physics.colours(rng, k, z)
    stars = np.nonzero(kind == "star")[0]
    cols["mag_r_intrinsic"][stars] = rng.uniform(15.5, s.mag_limit_r, len(stars))
    cols["g_r"][stars] = rng.uniform(0.2, 1.4, len(stars))
    cols["r_z"][stars] = 0.55 * cols["g_r"][stars] + rng.normal(0, 0.05, len(stars))
    lenses = np.nonzero(kind == "lens")[0]
    cols["z"][lenses] = rng.uniform(0.2, 0.7, len(lenses))  # refined by the lens renderer's truth

    ra = rng.uniform(s.ra_min_deg, s.ra_max_deg, n)
    sin_d = rng.uniform(np.sin(np.deg2rad(s.dec_min_deg)), np.sin(np.deg2rad(s.dec_max_deg)), n)
    dec = np.rad2deg(np.arcsin(sin_d))
    ebv = physics.toy_dust_map(ra, dec, s.seed)
    cond = physics.draw_conditions(rng, n, s.bands, s.pixel_scale_arcsec)

    n_art = int(round(n * s.artifact_fraction))
    artifact = np.array([""] * n, dtype=object)
    from .artifacts import ARTIFACT_KINDS

    host = rng.choice(np.nonzero(kind != "lens")[0], size=min(n_art, int((kind != "lens").sum())), replace=False)
    artifact[host] = rng.choice(list(ARTIFACT_KINDS), size=len(host))

    out: dict[str, Any] = {
        "object_id": np.array([f"sim-{i:07d}" for i in range(n)], dtype=object),
        "ra": ra, "dec": dec, "class": kind, **cols, "ebv": ebv,
        "dx_px": rng.uniform(-0.5, 0.5, n), "dy_px": rng.uniform(-0.5, 0.5, n),
        "is_lens": kind == "lens", "einstein_radius_arcsec": np.zeros(n), "z_source": np.zeros(n),
        "artifact_kind": artifact,
    }
    for c, b in enumerate(s.bands):
        out[f"psf_fwhm_{b}"] = cond.psf_fwhm_arcsec[:, c]
        out[f"depth_{b}"] = cond.depth_mag[:, c]
        out[f"noise_sigma_{b}"] = cond.noise_sigma[:, c]
    return Catalog(out)
