"""Stein et al. 2021 (arXiv:2110.00023, 2110.13151) DECaLS DR9 cutouts in their published HDF5.

Layout: `images (N, 3, 152, 152)` g, r, z in nanomaggies at 0.262"/px; catalog datasets `ra`,
`dec`, `ebv`, `flux (N,3)`, `psfsize (N,3)`, `psfdepth (N,3)`, `z_phot_median`, `z_spec`,
`brickid`, `objid`, `release`, `inds`. Only `images`, `ra`, `dec`, `release`, `brickid`, `objid`
are required; the rest are carried as columns when present ((N,3) ones split per band: `flux_g`,
`psfsize_r`, ...). Stamps of another size (e.g. pre-cropped to 144 px) are accepted as stored.

The object id is `f"{release}/{brickid}/{objid}"`, the Legacy Survey's unique key for a Tractor
source, so it is stable across re-downloads and re-orderings of the file.

    with SteinReader("south_0.h5") as r:
        r.catalog["flux_g"], r.images(range(8))   # (8, 3, 152, 152) float32
"""

from __future__ import annotations

import numpy as np

from .common import int_strings
from .hdf5_layout import Hdf5LayoutReader


class SteinReader(Hdf5LayoutReader):
    survey_name = "stein2021-decals-dr9"
    bands = ("g", "r", "z")
    pixel_scale_arcsec = 0.262
    flux_unit = "nanomaggy"
    required = ("images", "ra", "dec", "release", "brickid", "objid")

    def object_ids(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        parts = [int_strings(columns[k], k, self.source) for k in ("release", "brickid", "objid")]
        return np.array(["/".join(p) for p in zip(*parts, strict=True)], dtype=object)
