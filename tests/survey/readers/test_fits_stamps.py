"""survey.readers.fits_stamps: FITS stamps (folders, cubes, multi-HDU files), on the real COSMOS HST
stamps and on files built here with astropy."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from survey_files import COSMOS, GALSIM_STAMP, tan_header, truncate

from survey.readers.errors import CalibrationError, CorruptFile, DuplicateObjectId, EmptyStamp, WrongBandCount
from survey.readers.fits_stamps import FitsStamps, read_fits_stamps
from survey.readers.galsim_catalog import read_galsim_catalog


def test_real_cosmos_hst_stamps_with_galsim_catalog():
    cat = COSMOS / "real_galaxy_catalog_23.5.fits"
    stamps = FitsStamps(COSMOS / "real_galaxy_images_23.5_n1.fits", galsim_catalog=cat)
    cutouts = list(stamps)
    assert len(cutouts) == 10
    galsim = read_galsim_catalog(cat)
    assert [c.object_id for c in cutouts] == list(galsim["object_id"])
    with fits.open(COSMOS / "real_galaxy_images_23.5_n1.fits") as hdul:
        shapes = [h.data.shape for h in hdul]
    assert [c.pixels.shape[1:] for c in cutouts] == shapes
    for c, ra, dec in zip(cutouts, galsim["ra"], galsim["dec"], strict=True):
        assert c.pixel_scale_arcsec == pytest.approx(0.03, rel=1e-6)
        assert c.bands == ("F814W",) and c.pixels.dtype == np.float32
        assert c.pixels.dtype.byteorder in "=|"  # big-endian on disk, native in memory
        assert (c.ra_deg, c.dec_deg) == (pytest.approx(ra), pytest.approx(dec))
        assert np.isfinite(c.pixels).all()
    assert min(s[0] for s in shapes) == 46 and max(s[0] for s in shapes) == 234


def test_real_cosmos_stamps_without_wcs_need_calibration():
    # The images file has no WCS and no position keys: refuse rather than guess.
    with pytest.raises(CalibrationError, match=r"real_galaxy_images_23\.5_n1\.fits\[0\].*position"):
        FitsStamps(COSMOS / "real_galaxy_images_23.5_n1.fits", pixel_scale_arcsec=0.03)


def test_galsim_example_stamp_wcs_position():
    (c,) = read_fits_stamps(GALSIM_STAMP)
    assert c.pixels.shape == (1, 543, 543) and c.bands == ("F814W",)  # HST FILTER2
    assert c.pixel_scale_arcsec == pytest.approx(0.03, rel=1e-4)
    # The file name records the galaxy's position; the WCS at the stamp centre must agree.
    assert c.ra_deg == pytest.approx(150.416558, abs=2e-6)
    assert c.dec_deg == pytest.approx(1.998697, abs=2e-6)
    assert c.object_id == "147246.0_150.416558_1.998697_masknoise/0"


def test_fits_folder_with_wcs_and_cube(tmp_path):
    folder = tmp_path / "stamps"
    folder.mkdir()
    h = tan_header(30.0, -10.0, 0.2, (40, 40))
    h["OBJECT"], h["FILTER"] = "gal-a", "r"
    fits.PrimaryHDU(np.ones((40, 40), dtype=">f4"), header=h).writeto(folder / "a.fits")
    h3 = tan_header(31.0, -11.0, 0.2, (40, 40))
    h3["ID"], h3["BANDS"] = "gal-b", "g,r,z"
    fits.PrimaryHDU(np.full((3, 40, 40), 2.0, dtype=np.float32), header=h3).writeto(
        folder / "b.fits"
    )
    fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])]).writeto(folder / "t.fits")
    stamps = FitsStamps(folder)
    assert [r.object_id for r in stamps.refs] == ["gal-a", "gal-b"]
    assert [p.name for p, _ in stamps.skipped_files] == ["t.fits"]
    a, b = list(stamps)
    assert a.bands == ("r",) and a.pixels.shape == (1, 40, 40)
    assert b.bands == ("g", "r", "z") and b.pixels.shape == (3, 40, 40)
    assert a.pixel_scale_arcsec == pytest.approx(0.2)
    # Even-sized stamp: the centre lies between pixels; CRPIX put the reference point there.
    assert (a.ra_deg, a.dec_deg) == (pytest.approx(30.0), pytest.approx(-10.0))
    assert list(stamps.catalog["file"]) == ["a.fits", "b.fits"]


def test_fits_multi_hdu_ids_from_file_and_index(tmp_path):
    hdus = [fits.PrimaryHDU()]
    for i in range(3):
        h = tan_header(100.0 + i, 5.0, 0.5, (20, 20))
        h["BAND"] = "i"
        hdus.append(fits.ImageHDU(np.ones((20, 20), np.float32) * i + 1, header=h))
    fits.HDUList(hdus).writeto(tmp_path / "many.fits")
    cutouts = read_fits_stamps(tmp_path / "many.fits")
    assert [c.object_id for c in cutouts] == ["many/1", "many/2", "many/3"]
    assert [c.ra_deg for c in cutouts] == [pytest.approx(100.0 + i) for i in range(3)]


def test_fits_wrong_band_count_and_nan_stamp(tmp_path):
    h = tan_header(30.0, -10.0, 0.2, (16, 16))
    h["OBJECT"] = "cube4"
    fits.PrimaryHDU(np.ones((4, 16, 16), np.float32), header=h).writeto(tmp_path / "cube4.fits")
    stamps = FitsStamps(tmp_path / "cube4.fits", bands=("g", "r", "z"))
    with pytest.raises(WrongBandCount, match=r"cube4\.fits\[0\] \(object cube4\): 4 image plane"):
        stamps.read(0)
    h["OBJECT"], h["BAND"] = "blank", "r"
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32), header=h).writeto(tmp_path / "nan.fits")
    with pytest.raises(EmptyStamp, match=r"nan\.fits\[0\] \(object blank\): NaN-only"):
        read_fits_stamps(tmp_path / "nan.fits")


def test_fits_duplicate_header_ids(tmp_path):
    for name in ("x.fits", "y.fits"):
        h = tan_header(30.0, -10.0, 0.2, (8, 8))
        h["OBJECT"], h["BAND"] = "COSMOS", "r"  # a field name, not an object id
        fits.PrimaryHDU(np.ones((8, 8), np.float32), header=h).writeto(tmp_path / name)
    with pytest.raises(DuplicateObjectId, match="'COSMOS' x2"):
        FitsStamps(tmp_path)
    assert len(FitsStamps(tmp_path, id_keys=())) == 2  # fall back to file names


@pytest.mark.parametrize("maker", ["truncated", "garbage"])
def test_unreadable_fits(tmp_path, maker):
    path = tmp_path / "bad.fits"
    if maker == "truncated":
        h = tan_header(30.0, -10.0, 0.2, (64, 64))
        h["BAND"] = "r"
        fits.HDUList(
            [fits.PrimaryHDU(np.ones((64, 64), np.float32), header=h)]
            + [fits.ImageHDU(np.ones((64, 64), np.float32), header=h)]
        ).writeto(path)
        truncate(path, 0.8)
    else:
        path.write_bytes(b"not a FITS file at all " * 200)
    with pytest.raises(CorruptFile, match=r"bad\.fits.*(truncated|corrupt)"):
        FitsStamps(path)
