"""ingest(): published layouts -> native shards, with every object either written or recorded."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image
from survey_files import COSMOS, write_stein

from survey.errors import SurveyError
from survey.ingest import IngestReport, ingest
from survey.native import NativeSurvey
from survey.readers.errors import CorruptFile, DuplicateObjectId, LayoutMismatch, WrongBandCount


def assert_accounted(report: IngestReport) -> None:
    assert report.n_read == report.n_written + len(report.rejected)


def test_stein_round_trip(tmp_path):
    data = write_stein(tmp_path / "stein.h5", n=5)
    report = ingest(tmp_path / "stein.h5", "stein", tmp_path / "out", shard_size=3, batch_size=2)
    assert (report.n_read, report.n_written, report.rejected) == (5, 5, [])
    assert [p.name for p in report.shards] == ["shard-00000.h5", "shard-00001.h5"]
    survey = NativeSurvey(tmp_path / "out")
    assert survey.bands == ("g", "r", "z") and survey.pixel_scale_arcsec == 0.262
    assert list(survey.catalog["object_id"]) == [f"9010/{330000 + i}/{i}" for i in range(5)]
    np.testing.assert_array_equal(survey.images(np.arange(5)), data["images"])
    np.testing.assert_allclose(survey.catalog["flux_z"], data["flux"][:, 2])
    np.testing.assert_allclose(survey.catalog["ra"], data["ra"])
    survey.close()
    saved = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert saved["n_written"] == 5 and saved["shards"] == ["shard-00000.h5", "shard-00001.h5"]


def test_nan_only_stamp_is_rejected_and_recorded(tmp_path):
    images = np.ones((5, 3, 152, 152), dtype=np.float32)
    images[2] = np.nan
    images[4, 1] = np.nan  # one band missing is as useless as all of them
    write_stein(tmp_path / "nan.h5", n=5, images=images)
    report = ingest(tmp_path / "nan.h5", "stein", tmp_path / "out", size_px=144)
    assert_accounted(report)
    assert report.n_written == 3 and report.image_shape == (3, 144, 144)
    assert [r.object_id for r in report.rejected] == ["9010/330002/2", "9010/330004/4"]
    src, _, reason = report.rejected[1]
    assert (
        src.endswith("nan.h5")
        and reason.startswith("EmptyStamp: NaN-only")
        and "band(s) r" in reason
    )
    ids = NativeSurvey(tmp_path / "out").catalog["object_id"]
    assert "9010/330002/2" not in set(ids) and len(ids) == 3


def test_whole_file_problems_raise_and_write_nothing(tmp_path):
    write_stein(tmp_path / "four.h5", planes=4)
    with pytest.raises(WrongBandCount, match="four.h5"):
        ingest(tmp_path / "four.h5", "stein", tmp_path / "out")
    path = tmp_path / "cut.h5"
    write_stein(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptFile, match="cut.h5"):
        ingest(path, "stein", tmp_path / "out")
    assert not list((tmp_path / "out").glob("shard-*"))


def test_existing_shards_need_overwrite(tmp_path):
    write_stein(tmp_path / "s.h5", n=2)
    ingest(tmp_path / "s.h5", "stein", tmp_path / "out")
    with pytest.raises(SurveyError, match="overwrite"):
        ingest(tmp_path / "s.h5", "stein", tmp_path / "out")
    assert ingest(tmp_path / "s.h5", "stein", tmp_path / "out", overwrite=True).n_written == 2


def test_hayat_ingest(tmp_path):
    n = 3
    with h5py.File(tmp_path / "sdss.h5", "w") as f:
        f["images"] = np.ones((n, 5, 107, 107), np.float32)
        f["ObjID"] = np.arange(n, dtype=np.int64) + 1237645879551066262
        f["ra"], f["dec"] = np.full(n, 150.0), np.full(n, 2.0)
        f["e_bv"] = np.full(n, 0.02, np.float32)
        f["specz_redshift"] = np.array([0.1, 0.2, 0.3], np.float32)
    report = ingest(tmp_path / "sdss.h5", "hayat", tmp_path / "out")
    survey = NativeSurvey(tmp_path / "out")
    assert report.n_written == 3 and survey.bands == ("u", "g", "r", "i", "z")
    np.testing.assert_allclose(survey.catalog["z"], [0.1, 0.2, 0.3])


def test_cosmos_fits_stamps_ingest(tmp_path):
    images = COSMOS / "real_galaxy_images_23.5_n1.fits"
    with pytest.raises(LayoutMismatch, match="size_px"):  # 46-234 px stamps need one size
        ingest(images, "fits", tmp_path / "out", catalog=COSMOS / "real_galaxy_catalog_23.5.fits")
    report = ingest(
        images,
        "fits",
        tmp_path / "out",
        size_px=64,
        catalog=COSMOS / "real_galaxy_catalog_23.5.fits",
    )
    assert (report.n_written, report.image_shape) == (10, (1, 64, 64))
    survey = NativeSurvey(tmp_path / "out")
    assert survey.bands == ("F814W",) and survey.pixel_scale_arcsec == pytest.approx(0.03)
    assert survey.catalog["object_id"][0] == "141190"
    assert list(survey.catalog["hdu"]) == list(range(10))


def test_fits_folder_rejects_odd_stamp(tmp_path):
    def stamp(name: str, planes: int, fill: float) -> None:
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval = ["RA---TAN", "DEC--TAN"], [20.0, 1.0]
        w.wcs.crpix, w.wcs.cdelt = [8.5, 8.5], [-0.2 / 3600, 0.2 / 3600]
        h = w.to_header()
        h["OBJECT"] = name
        shape = (planes, 16, 16) if planes > 1 else (16, 16)
        fits.PrimaryHDU(np.full(shape, fill, np.float32), header=h).writeto(
            tmp_path / f"{name}.fits"
        )

    (tmp_path / "in").mkdir()
    tmp_path = tmp_path / "in"
    stamp("a", 3, 1.0)
    stamp("b", 4, 1.0)  # wrong band count
    stamp("c", 3, np.nan)  # NaN-only
    report = ingest(tmp_path, "fits", tmp_path.parent / "out", bands=("g", "r", "z"))
    assert_accounted(report)
    assert report.n_written == 1
    assert {r.object_id: r.reason.split(":")[0] for r in report.rejected} == {
        "b": "WrongBandCount",
        "c": "EmptyStamp",
    }


def test_mosaic_ingest_records_off_image_source(tmp_path):
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval = ["RA---TAN", "DEC--TAN"], [150.0, 2.0]
    w.wcs.crpix, w.wcs.cdelt = [50.5, 50.5], [-0.25 / 3600, 0.25 / 3600]
    h = w.to_header()
    h["BAND"] = "i"
    fits.PrimaryHDU(np.ones((100, 100), np.float32), header=h).writeto(tmp_path / "m.fits")
    rows = [
        ("in", *w.pixel_to_world_values(50, 50)),
        ("edge", *w.pixel_to_world_values(1, 50)),
        ("away", *w.pixel_to_world_values(400, 50)),
    ]
    (tmp_path / "src.csv").write_text(
        "object_id,ra,dec\n" + "".join(f"{o},{r},{d}\n" for o, r, d in rows)
    )
    report = ingest(
        tmp_path / "m.fits", "mosaic", tmp_path / "out", size_px=21, catalog=tmp_path / "src.csv"
    )
    assert_accounted(report)
    assert report.n_written == 2 and [r.object_id for r in report.rejected] == ["away"]
    assert "OffImage" in report.rejected[0].reason and "entirely off" in report.rejected[0].reason
    survey = NativeSurvey(tmp_path / "out")
    edge = survey.images([1])[0]
    assert np.isnan(edge).any() and survey.catalog["off_image_fraction"][1] > 0


def test_image_folder_ingest_records_missing_file(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((12, 12, 3), 100, np.uint8)).save(root / f"{name}.png")
    (root / "catalog.csv").write_text(
        "object_id,ra,dec,file\na,1,2,a.png\nb,1,2,b.png\nc,1,2,c.png\n"
    )
    report = ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.262)
    assert_accounted(report)
    assert report.n_written == 2 and report.rejected[0].object_id == "c"
    assert "not found" in report.rejected[0].reason
    survey = NativeSurvey(tmp_path / "out")
    assert survey.bands == ("r", "g", "b") and survey.images([0])[0, 0, 0, 0] == pytest.approx(
        100 / 255
    )


def test_duplicate_ids_in_csv_raise(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "catalog.csv").write_text("object_id,ra,dec,file\na,1,2,a.png\na,1,2,b.png\n")
    with pytest.raises(DuplicateObjectId, match="'a' x2"):
        ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.262)
