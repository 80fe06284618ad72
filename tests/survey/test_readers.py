"""Readers for the published layouts: files are built here from the documented keys with h5py,
astropy and Pillow directly (not with skysift's writer), plus the real COSMOS HST stamps."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from survey.errors import CatalogError, UnreadableCutout
from survey.readers.errors import (
    BadPosition,
    CalibrationError,
    CorruptFile,
    DuplicateObjectId,
    EmptyStamp,
    MissingKey,
    OffImage,
    WrongBandCount,
)
from survey.readers.fits_stamps import FitsStamps, read_fits_stamps
from survey.readers.galsim_catalog import read_galsim_catalog
from survey.readers.hayat import HayatReader
from survey.readers.image_folder import ImageFolder
from survey.readers.mosaic import Mosaic
from survey.readers.resize import pad_crop, resample, to_common
from survey.readers.stein import SteinReader

EXTERNAL = Path(__file__).resolve().parents[1] / "data" / "external"  # real HST pixels; PROVENANCE.md there
COSMOS = EXTERNAL / "cosmos_hst_stamps"
GALSIM_STAMP = EXTERNAL / "galsim_cosmos_example" / "147246.0_150.416558_1.998697_masknoise.fits"


# -- builders of the published layouts ---------------------------------------------------------
def write_stein(path: Path, n: int = 4, size: int = 152, planes: int = 3, **override) -> dict:
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
        "objid": np.arange(n, dtype=np.int32) * 7,
        "release": np.full(n, 9010, dtype=np.int16),
        "inds": np.arange(n, dtype=np.int64),
    }
    data.update(override)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if v is not None:
                f.create_dataset(k, data=v)
    return data


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


def tan_header(
    ra: float, dec: float, scale_arcsec: float, shape_hw: tuple[int, int]
) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(shape_hw[1] + 1) / 2, (shape_hw[0] + 1) / 2]  # 1-based centre
    w.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return w.to_header()


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# -- Stein et al. (DECaLS DR9) -----------------------------------------------------------------
def test_stein_layout_maps_to_contract(tmp_path):
    data = write_stein(tmp_path / "stein.h5")
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
    with pytest.raises(BadPosition, match=r"pos\.h5 \(object 9010/330001/7\)"):
        SteinReader(tmp_path / "pos.h5")


def test_nan_only_stamp_names_object(tmp_path):
    images = np.ones((4, 3, 152, 152), dtype=np.float32)
    images[1] = np.nan
    write_stein(tmp_path / "nan.h5", images=images)
    with SteinReader(tmp_path / "nan.h5") as r:
        r.cutout(0)
        with pytest.raises(EmptyStamp, match=r"nan\.h5 \(object 9010/330001/7\): NaN-only"):
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


# -- Hayat et al. (SDSS) -----------------------------------------------------------------------
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


# -- FITS stamps -------------------------------------------------------------------------------
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


def test_galsim_catalog_joins_fits_table():
    cat = read_galsim_catalog(
        COSMOS / "real_galaxy_catalog_23.5.fits",
        fits_table=COSMOS / "real_galaxy_catalog_23.5_fits.fits",
    )
    assert len(cat) == 10 and cat["object_id"][0] == "141190"
    assert cat["zphot"][0] == pytest.approx(0.195, abs=1e-3)
    assert cat["gal_filename"][0] == "real_galaxy_images_23.5_n1.fits"


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


# -- image folder ------------------------------------------------------------------------------
def write_image_folder(root: Path, rows: list[tuple[str, float, float, str, str]]) -> None:
    root.mkdir(exist_ok=True)
    lines = ["object_id,ra,dec,file,z,note"]
    lines += [
        f"{oid},{ra},{dec},{file},{z},{note}"
        for oid, ra, dec, file, z, note in [(*r[:4], 0.1 * i, r[4]) for i, r in enumerate(rows)]
    ]
    (root / "catalog.csv").write_text("\n".join(lines) + "\n")


def test_image_folder_png_jpeg(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(root, [("a", 1.0, 2.0, "a.png", "x"), ("b", 3.0, 4.0, "b.jpg", "y")])
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    Image.fromarray(rgb).save(root / "a.png")
    Image.fromarray(rgb).save(root / "b.jpg", quality=95)
    folder = ImageFolder(root, pixel_scale_arcsec=0.262)
    a, b = list(folder)
    assert a.bands == ("r", "g", "b") and a.pixels.shape == (3, 24, 24)
    np.testing.assert_allclose(a.pixels[:, 0, 0], [1.0, 128 / 255, 0.0])  # R, G, B planes
    assert b.pixels.shape == (3, 24, 24) and a.pixel_scale_arcsec == 0.262
    assert (b.object_id, b.ra_deg, b.dec_deg) == ("b", 3.0, 4.0)
    assert folder.catalog["z"].dtype == np.float64 and list(folder.catalog["note"]) == ["x", "y"]
    z = ImageFolder(root, pixel_scale_arcsec=0.262, bands=("z", "r", "g")).read(0)
    assert z.bands == ("z", "r", "g")


def test_image_folder_bad_inputs(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(
        root,
        [
            ("grey", 1.0, 2.0, "g.png", ""),
            ("cut", 1.0, 2.0, "c.png", ""),
            ("gone", 1.0, 2.0, "missing.png", ""),
        ],
    )
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "g.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(root / "c.png")
    truncate(root / "c.png", 0.5)
    folder = ImageFolder(root, pixel_scale_arcsec=0.2)
    with pytest.raises(WrongBandCount, match=r"g\.png \(object grey\): 1 channel"):
        folder.read(0)
    with pytest.raises(CorruptFile, match=r"c\.png \(object cut\).*truncated"):
        folder.read(1)
    with pytest.raises(
        UnreadableCutout, match=r"missing\.png \(object gone\): image file not found"
    ):
        folder.read(2)


def test_image_folder_duplicate_ids(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(root, [("a", 1.0, 2.0, "a.png", ""), ("a", 1.0, 2.0, "b.png", "")])
    with pytest.raises(DuplicateObjectId, match=r"catalog\.csv.*'a' x2"):
        ImageFolder(root, pixel_scale_arcsec=0.2)


# -- mosaic ------------------------------------------------------------------------------------
def write_mosaic(tmp_path: Path, sources: list[tuple[str, float, float]]) -> tuple[Path, Path, WCS]:
    shape = (120, 100)
    h = tan_header(150.0, 2.0, 0.25, shape)
    h["FILTER"] = "i"
    data = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "mosaic.fits")
    lines = ["object_id,ra,dec,mag"] + [f"{o},{r},{d},20.5" for o, r, d in sources]
    (tmp_path / "sources.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "mosaic.fits", tmp_path / "sources.csv", WCS(h)


def test_mosaic_cutouts_partial_and_off_image(tmp_path):
    shape = (120, 100)
    w = WCS(tan_header(150.0, 2.0, 0.25, shape))
    inside = w.pixel_to_world_values(40, 70)
    edge = w.pixel_to_world_values(2, 3)
    off = w.pixel_to_world_values(-500, 60)
    image, csv, _ = write_mosaic(tmp_path, [("in", *inside), ("edge", *edge), ("off", *off)])
    m = Mosaic(image, csv, size_px=15)
    assert m.bands == ("i",) and m.pixel_scale_arcsec == pytest.approx(0.25)
    c = m.cutout(0)
    assert c.pixels.shape == (1, 15, 15) and not np.isnan(c.pixels).any()
    assert c.pixels[0, 7, 7] == 70 * 100 + 40  # odd size: the source is on the central pixel
    e = m.cutout(1)
    assert np.isnan(e.pixels).any() and np.isfinite(e.pixels).any()  # NaN = off-image
    assert 0 < m.catalog["off_image_fraction"][1] < 1
    assert np.isnan(e.pixels).mean() == pytest.approx(m.catalog["off_image_fraction"][1])
    assert m.catalog["off_image_fraction"][2] == 1.0 and m.catalog["mag"][0] == 20.5
    with pytest.raises(OffImage, match=r"mosaic\.fits \(object off\): .*entirely off"):
        m.cutout(2)
    m.close()


def test_mosaic_without_wcs(tmp_path):
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(tmp_path / "plain.fits")
    (tmp_path / "s.csv").write_text("object_id,ra,dec\na,1,2\n")
    with pytest.raises(CalibrationError, match=r"plain\.fits.*no celestial WCS"):
        Mosaic(tmp_path / "plain.fits", tmp_path / "s.csv", size_px=8, bands=("r",))


# -- resize helpers ----------------------------------------------------------------------------
def test_pad_crop_and_resample():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    crop = pad_crop(x, 3)
    np.testing.assert_array_equal(crop, x[:, 1:4, 1:4])
    pad = pad_crop(x, 7)
    assert pad.shape == (2, 7, 7) and np.isnan(pad[:, 0]).all()
    np.testing.assert_array_equal(pad[:, 1:6, 1:6], x)
    flat = np.ones((1, 40, 40), np.float32)
    half = resample(flat, 0.1, 0.2)
    assert half.shape == (1, 20, 20) and half.sum() == pytest.approx(flat.sum(), rel=1e-5)


def test_to_common_brings_cosmos_stamps_to_one_grid():
    stamps = FitsStamps(
        COSMOS / "real_galaxy_images_23.5_n1.fits",
        galsim_catalog=COSMOS / "real_galaxy_catalog_23.5.fits",
    )
    out = [to_common(c, 64, pixel_scale_arcsec=0.06) for c in stamps]
    assert {c.pixels.shape for c in out} == {(1, 64, 64)}
    assert {c.pixel_scale_arcsec for c in out} == {0.06}
