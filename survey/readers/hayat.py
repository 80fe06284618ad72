"""Hayat et al. 2021 (arXiv:2012.13083) SDSS cutouts in their published HDF5.

Layout: `images (N, 5, 107, 107)` u, g, r, i, z at the SDSS 0.396"/px; `ObjID`, `ra`, `dec`,
`e_bv`, `specz_redshift`. `ObjID` (SDSS's 64-bit photometric object id) becomes `object_id`, as a
decimal string, and is also kept as a column; `specz_redshift` becomes column `z`. `e_bv` may be
one E(B-V) per object (N,) -> column `e_bv`, or per-band extinction (N, 5) -> `e_bv_u` ... `e_bv_z`.

Flux unit: the files do not state one. The cutouts were made from SDSS corrected frames, which are
calibrated in nanomaggies, so pixels are passed on unchanged ("as published") and `flux_unit` says
so; nothing here rescales or dereddens them.

    with HayatReader("sdss_w_specz_train.h5") as r:
        r.catalog["z"], r.images([0, 1])   # (2, 5, 107, 107) float32
"""

from __future__ import annotations

import numpy as np

from .common import int_strings
from .hdf5_layout import Hdf5LayoutReader


class HayatReader(Hdf5LayoutReader):
    survey_name = "hayat2021-sdss"
    bands = ("u", "g", "r", "i", "z")
    pixel_scale_arcsec = 0.396
    flux_unit = "as published (SDSS frames: nanomaggy)"
    required = ("images", "ra", "dec", "ObjID")
    renames = {"specz_redshift": "z"}

    def object_ids(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return int_strings(columns["ObjID"], "ObjID", self.source)
