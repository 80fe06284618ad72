"""survey.readers.stein: the Stein et al. (DECaLS DR9) HDF5 layout, built here from the documented
keys with h5py."""

from __future__ import annotations

import numpy as np
import pytest
from survey_files import truncate, write_stein

from survey.errors import CatalogError, UnreadableCutout
from survey.readers.errors import BadPosition, CorruptFile, DuplicateObjectId, EmptyStamp, MissingKey, WrongBandCount
from survey.readers.stein import SteinReader


def test_stein_layout_maps_to_contract(tmp_path):
    data = write_stein(tmp_path / "stein.h5", objid=np.arange(4, dtype=np.int32) * 7)  # objid != row
    with SteinReader(tmp_path / "stein.h5") as r:
        assert len(r) == 4 and r.bands == ("g", "r", "z") and r.pixel_scale_arcsec == 0.262
        assert r.image_shape == (3, 152, 152)
        assert list(r.catalog["object_id"]) == [f"9010/{330000 + i}/{7 * i}" for i in range(4)]
        for col in (
            "flux_g",
            "flux_r",
            "flux_z",
            "psfsize_r",
            "psfdepth_z",
            "ebv",
            "z_spec",
            "z_phot_median",
            "brickid",
            "objid",
            "release",
            "inds",
        ):
            assert col in r.catalog, col
        np.testing.assert_allclose(r.catalog["flux_r"], data["flux"][:, 1])
        np.testing.assert_allclose(r.catalog["ra"], data["ra"])
        imgs = r.images([3, 1])  # lazy slice, any order
        assert imgs.dtype == np.float32 and imgs.shape == (2, 3, 152, 152)
        np.testing.assert_array_equal(imgs, data["images"][[3, 1]])
        c = r.cutout(2)
        assert c.object_id == "9010/330002/14" and c.bands == ("g", "r", "z")
        assert c.ra_deg == pytest.approx(data["ra"][2])


def test_stein_missing_images_key(tmp_path):
    write_stein(tmp_path / "noimg.h5", images=None)
    with pytest.raises(MissingKey, match=r"noimg\.h5.*images"):
        SteinReader(tmp_path / "noimg.h5")


def test_stein_wrong_band_count(tmp_path):
    write_stein(tmp_path / "four.h5", planes=4)
    with pytest.raises(WrongBandCount, match=r"four\.h5.*4 planes"):
        SteinReader(tmp_path / "four.h5")


def test_stein_duplicate_ids(tmp_path):
    write_stein(
        tmp_path / "dup.h5",
        objid=np.array([5, 5, 6, 7], dtype=np.int32),
        brickid=np.full(4, 1, dtype=np.int32),
    )
    with pytest.raises(DuplicateObjectId, match=r"dup\.h5.*'9010/1/5' x2") as e:
        SteinReader(tmp_path / "dup.h5")
    assert isinstance(e.value, CatalogError)


def test_stein_bad_position_names_object(tmp_path):
    write_stein(tmp_path / "pos.h5", ra=np.array([1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(BadPosition, match=r"pos\.h5 \(object 9010/330001/1\)"):
        SteinReader(tmp_path / "pos.h5")


def test_nan_only_stamp_names_object(tmp_path):
    images = np.ones((4, 3, 152, 152), dtype=np.float32)
    images[1] = np.nan
    write_stein(tmp_path / "nan.h5", images=images)
    with SteinReader(tmp_path / "nan.h5") as r:
        r.cutout(0)
        with pytest.raises(EmptyStamp, match=r"nan\.h5 \(object 9010/330001/1\): NaN-only"):
            r.cutout(1)


@pytest.mark.parametrize("maker", ["truncated", "garbage"])
def test_unreadable_hdf5(tmp_path, maker):
    path = tmp_path / "bad.h5"
    if maker == "truncated":
        write_stein(path)
        truncate(path)
    else:
        path.write_bytes(b"\x00garbage bytes, not HDF5" * 50)
    with pytest.raises(CorruptFile, match=r"bad\.h5.*(truncated|signature)") as e:
        SteinReader(path)
    assert isinstance(e.value, UnreadableCutout) and e.value.object_id is None
