"""Render a simulated survey into native HDF5 shards, in parallel over cores.

    skysift simulate --preset demo --seed 1 --out data/demo

Pipeline per object: noiseless GalSim (or lenstronomy, for lenses) image in nanomaggies ->
Galactic extinction 10**(-0.4 R_b E(B-V)) -> Gaussian sky noise at the object's depth -> an
optional artifact. Catalog magnitudes are the model's total flux after extinction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from ..errors import SurveyError
from ..native import shard_name, write_shard
from .galaxies import render_object
from .population import draw_population, object_seeds
from .settings import SimSettings

SETTINGS_FILE = "simulation.json"
_NOT_PIXELS = {"workers", "out_dir"}  # settings a resumed run may change: the bytes do not depend on them

# A_band / E(B-V) for DECam (Schlafly & Finkbeiner 2011, as used by the Legacy Surveys), plus SDSS u, i.
EXTINCTION_COEFFS = {"u": 4.239, "g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211}


def render_shard(s: SimSettings, cat: Catalog, seeds: np.ndarray) -> tuple[np.ndarray, Catalog]:
    """Images (N, C, H, W) float32 and the completed catalog rows for one shard."""
    from .artifacts import add_artifact

    bands, n = s.bands, len(cat)
    images = np.empty((n, len(bands), s.size_px, s.size_px), dtype=np.float32)
    cols = {k: v.copy() for k, v in cat.columns.items()}
    coeff = np.array([EXTINCTION_COEFFS[b] for b in bands])
    for i in range(n):
        rng = np.random.default_rng(int(seeds[i]))
        fwhm = np.array([cols[f"psf_fwhm_{b}"][i] for b in bands])
        sigma = np.array([cols[f"noise_sigma_{b}"][i] for b in bands])
        kind = cols["class"][i]
        if kind == "lens":
            from .lenses import draw_lens

            img, truth = draw_lens(rng, bands=bands, size_px=s.size_px, pixel_scale_arcsec=s.pixel_scale_arcsec,
                                   psf_fwhm_arcsec=fwhm, z_lens=float(cols["z"][i]))
            cols["einstein_radius_arcsec"][i] = truth["einstein_radius_arcsec"]
            cols["z_source"][i] = truth["z_source"]
            cols["z"][i] = truth["z_lens"]
        else:
            mag = cols["mag_r_intrinsic"][i]
            params = {
                "flux_r": float(10 ** (-0.4 * (mag - 22.5))), "g_r": float(cols["g_r"][i]),
                "r_z": float(cols["r_z"][i]), "hlr": float(cols["hlr_arcsec"][i]), "q": float(cols["axis_ratio"][i]),
                "beta_deg": float(cols["pa_deg"][i]), "dx": float(cols["dx_px"][i]), "dy": float(cols["dy_px"][i]),
            }
            img = render_object(kind, params, bands, s.size_px, s.pixel_scale_arcsec, fwhm, int(rng.integers(2**62)))
        img = img * (10 ** (-0.4 * coeff * cols["ebv"][i]))[:, None, None]
        total = img.sum(axis=(1, 2))
        for c, b in enumerate(bands):
            cols.setdefault(f"mag_{b}", np.zeros(n))[i] = 22.5 - 2.5 * np.log10(max(float(total[c]), 1e-6))
        img = img + rng.normal(0.0, 1.0, img.shape) * sigma[:, None, None]
        if cols["artifact_kind"][i]:
            img = add_artifact(img, str(cols["artifact_kind"][i]), rng,
                               pixel_scale_arcsec=s.pixel_scale_arcsec, noise_sigma=sigma)
        images[i] = img
    return images, Catalog(cols)


def _shard_job(args: tuple[SimSettings, Catalog, np.ndarray, Path]) -> tuple[Path, int]:
    s, cat, seeds, path = args
    images, full = render_shard(s, cat, seeds)
    write_shard(path, images, full, s.bands, s.pixel_scale_arcsec, s.survey_name)
    return path, len(cat)


def simulate(s: SimSettings, on_shard: Callable[[int], None] | None = None) -> list[Path]:
    """Write the whole survey to s.out_dir as shard-*.h5. A shard that already exists complete
    (renamed from .partial) is kept: a killed run resumes where it stopped."""
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The resolved settings, next to the shards (the reader only globs shard-*.h5). A resumed run
    # must be the same survey: finished shards of another seed or size would be silently mixed in.
    settings_path = out / SETTINGS_FILE
    if settings_path.exists():
        before = json.loads(settings_path.read_text())
        now = json.loads(s.model_dump_json())
        differ = sorted(k for k in now.keys() | before.keys() if k not in _NOT_PIXELS and before.get(k) != now.get(k))
        if differ:
            raise SurveyError(f"{out}: already holds a survey simulated with other settings ({', '.join(differ)}); "
                              "use another --out folder or delete it")
    settings_path.write_text(s.model_dump_json(indent=2) + "\n")
    cat = draw_population(s)
    seeds = object_seeds(s.seed, len(cat))
    jobs, done = [], []
    for k, start in enumerate(range(0, len(cat), s.shard_size)):
        rows = np.arange(start, min(start + s.shard_size, len(cat)))
        path = out / shard_name(k)
        if path.exists():
            done.append(path)
            if on_shard:
                on_shard(len(rows))
            continue
        jobs.append((s, cat.take(rows), seeds[rows], path))
    if s.workers <= 1 or len(jobs) <= 1:
        results = map(_shard_job, jobs)
        for path, m in results:
            done.append(path)
            if on_shard:
                on_shard(m)
    else:
        with ProcessPoolExecutor(max_workers=s.workers, mp_context=get_context("fork")) as ex:
            for path, m in ex.map(_shard_job, jobs):
                done.append(path)
                if on_shard:
                    on_shard(m)
    return sorted(done)
