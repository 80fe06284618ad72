"""survey.readers.hayat: the Hayat et al. (SDSS) HDF5 layout, built here from the documented keys
with h5py."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from survey.readers.hayat import HayatReader


def write_hayat(path: Path, n: int = 4, ebv_per_band: bool = True) -> dict:
    rng = np.random.default_rng(1)
    data = {
        "images": rng.normal(size=(n, 5, 107, 107)).astype(np.float32),
        "ObjID": np.array([1237645879551066262 + i for i in range(n)], dtype=np.int64),
        "ra": np.linspace(150.0, 150.1, n),
        "dec": np.linspace(2.0, 2.1, n),
        "e_bv": rng.uniform(0, 0.1, (n, 5) if ebv_per_band else n).astype(np.float32),
        "specz_redshift": rng.uniform(0, 0.4, n).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
    return data



@pytest.mark.parametrize("ebv_per_band", [True, False])
def test_hayat_layout_maps_to_contract(tmp_path, ebv_per_band):
    data = write_hayat(tmp_path / "sdss.h5", ebv_per_band=ebv_per_band)
    with HayatReader(tmp_path / "sdss.h5") as r:
        assert r.bands == ("u", "g", "r", "i", "z") and r.pixel_scale_arcsec == 0.396
        assert r.image_shape == (5, 107, 107)
        assert r.catalog["object_id"][0] == "1237645879551066262"  # 64-bit id kept exactly
        np.testing.assert_allclose(r.catalog["z"], data["specz_redshift"])
        if ebv_per_band:
            np.testing.assert_allclose(r.catalog["e_bv_i"], data["e_bv"][:, 3])
            assert "e_bv" not in r.catalog
        else:
            np.testing.assert_allclose(r.catalog["e_bv"], data["e_bv"])
        np.testing.assert_array_equal(r.images(slice(0, 2)), data["images"][:2])
