"""Builders of survey input files shared by tests/survey/ and tests/survey/readers/ (importable as
`survey_files`: tests/ is on the path through its conftest). Files are written with h5py, astropy
and Pillow directly, from the published layouts' documented keys, not with skysift's writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

EXTERNAL = Path(__file__).resolve().parent / "data" / "external"  # real HST pixels; PROVENANCE.md there
COSMOS = EXTERNAL / "cosmos_hst_stamps"
GALSIM_STAMP = EXTERNAL / "galsim_cosmos_example" / "147246.0_150.416558_1.998697_masknoise.fits"


def write_stein(path: Path, n: int = 4, size: int = 152, planes: int = 3, **override: Any) -> dict:
    """The Stein et al. (DECaLS DR9) keys for n objects; `override` replaces a key's array, None
    leaves the key out. Object ids are release/brickid/objid = 9010/(330000 + i)/i."""
    rng = np.random.default_rng(0)
    data = {
        "images": rng.normal(size=(n, planes, size, size)).astype(np.float32),
        "ra": np.linspace(10.0, 11.0, n),
        "dec": np.linspace(-5.0, -4.0, n),
        "ebv": rng.uniform(0, 0.1, n).astype(np.float32),
        "flux": rng.uniform(1, 10, (n, 3)).astype(np.float32),
        "psfsize": rng.uniform(1, 2, (n, 3)).astype(np.float32),
        "psfdepth": rng.uniform(100, 200, (n, 3)).astype(np.float32),
        "z_phot_median": rng.uniform(0, 1, n).astype(np.float32),
        "z_spec": np.full(n, -99.0, dtype=np.float32),
        "brickid": np.arange(n, dtype=np.int32) + 330000,
        "objid": np.arange(n, dtype=np.int32),
        "release": np.full(n, 9010, dtype=np.int16),
        "inds": np.arange(n, dtype=np.int64),
    }
    data.update(override)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if v is not None:
                f.create_dataset(k, data=v)
    return data


def tan_header(ra: float, dec: float, scale_arcsec: float, shape_hw: tuple[int, int]) -> fits.Header:
    """A TAN WCS centred on (ra, dec) deg for an image of shape_hw (the reference pixel at its centre)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(shape_hw[1] + 1) / 2, (shape_hw[0] + 1) / 2]  # 1-based centre
    w.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return w.to_header()


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to its first `keep` fraction of bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
