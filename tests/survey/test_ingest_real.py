"""Ingest as astronomers need it: folders without a catalogue, sub-folders, one file per band,
reordered bands, positions from a WCS or unknown, and a report that says what was assumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from astropy.io import fits
from PIL import Image
from survey_files import tan_header
from typer.testing import CliRunner

from survey.catalog import Catalog
from survey.errors import CatalogError
from survey.ingest import IngestReport, ingest
from survey.native import NativeSurvey
from survey.readers.band_files import BandFilePattern
from survey.readers.common import check_positions
from survey.readers.csv_catalog import read_csv_catalog
from survey.readers.errors import BadPosition, DuplicateObjectId, MissingKey
from survey.readers.fits_stamps import FitsStamps
from survey.readers.image_folder import NO_CATALOGUE_NOTE, ImageFolder, image_planes

# A real RGB JPEG (the Hubble eXtreme Deep Field, 872 x 1000, public domain) shipped inside the
# scikit-image wheel: nothing is copied into the repository for it.
HUBBLE_JPEG = Path(skimage.data.__file__).parent / "hubble_deep_field.jpg"


def accounted(report: IngestReport) -> None:
    assert report.n_read == report.n_written + len(report.rejected)


def png(path: Path, value: int, size: int = 16, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    rng = np.random.default_rng(value)
    Image.fromarray(np.clip(rng.normal(value, 10, shape), 0, 255).astype(np.uint8)).save(path)


def band_fits(path: Path, fill: float, *, ra: float | None = 150.0, dec: float = 2.0, scale: float = 0.2,
              shape: tuple[int, ...] = (16, 16), bunit: str = "nanomaggies") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h = tan_header(ra, dec, scale, shape[-2:]) if ra is not None else fits.Header()
    if ra is None:
        h["PIXSCALE"] = scale
    h["BUNIT"] = bunit
    data = np.random.default_rng(int(fill * 10)).normal(fill, 0.1, shape).astype(np.float32)
    fits.PrimaryHDU(data, header=h).writeto(path)


# ---- positions: unknown is a supported state, half-known is not


def test_check_positions_allows_unknown_only_when_optional() -> None:
    ids = np.array(["a", "b"], dtype=object)
    nan = np.nan
    ra = check_positions(ids, [370.0, nan], [10.0, nan], "x.csv", optional=True)
    assert ra[0] == pytest.approx(10.0) and np.isnan(ra[1])
    with pytest.raises(BadPosition, match=r"x\.csv \(object b\)"):
        check_positions(ids, [1.0, nan], [1.0, nan], "x.csv")  # not optional: unknown refused
    for ra_b, dec_b in ((1.0, nan), (nan, 1.0), (np.inf, 1.0), (1.0, 91.0), (np.inf, np.inf)):
        with pytest.raises(BadPosition, match=r"\(object b\)"):
            check_positions(ids, [1.0, ra_b], [1.0, dec_b], "x.csv", optional=True)


def test_catalog_keeps_unknown_positions_and_refuses_half_known() -> None:
    cat = Catalog({"object_id": np.array(["a", "b"]), "ra": np.array([1.0, np.nan]), "dec": np.array([2.0, np.nan])})
    assert np.isnan(cat["ra"][1]) and np.isnan(cat.take([1])["dec"][0])
    with pytest.raises(CatalogError, match="known together"):
        Catalog({"object_id": np.array(["a"]), "ra": np.array([1.0]), "dec": np.array([np.nan])})
    with pytest.raises(CatalogError, match="dec must be finite"):
        Catalog({"object_id": np.array(["a"]), "ra": np.array([1.0]), "dec": np.array([95.0])})


# ---- CSV catalogues: accepted column names, optional positions


def test_csv_column_aliases_and_absent_positions(tmp_path: Path) -> None:
    path = tmp_path / "cat.csv"
    path.write_text("ObjID,Filename,z\n587722952767439450,a.png,0.1\n587722952767439451,b.png,0.2\n")
    notes: list[str] = []
    cat = read_csv_catalog(path, ("object_id", "file"), text_columns=("file",), positions_optional=True, notes=notes)
    assert list(cat["object_id"]) == ["587722952767439450", "587722952767439451"]  # text, not float
    assert list(cat["file"]) == ["a.png", "b.png"] and np.isnan(cat["ra"]).all() and np.isnan(cat["dec"]).all()
    assert any("'ObjID' read as object_id" in n for n in notes)
    assert any("no ra/dec columns: positions unknown" in n for n in notes)
    with pytest.raises(MissingKey, match=r"missing column\(s\) \['ra', 'dec'\]"):
        read_csv_catalog(path, ("object_id",))  # a mosaic's source list needs positions

    both = tmp_path / "both.csv"  # object_id wins, id stays data; RA_deg/DEC_deg are positions
    both.write_text("id,object_id,RA_deg,DEC_deg,path\n7,a,10.5,-3,a.png\n8,b,,,b.png\n")
    cat = read_csv_catalog(both, ("object_id", "file"), text_columns=("file",), positions_optional=True)
    assert list(cat["object_id"]) == ["a", "b"] and list(cat["id"]) == [7.0, 8.0]
    assert cat["ra"][0] == 10.5 and np.isnan(cat["ra"][1]) and list(cat["file"]) == ["a.png", "b.png"]

    half = tmp_path / "half.csv"
    half.write_text("object_id,ra,file\na,1,a.png\n")
    with pytest.raises(MissingKey, match="has ra but not dec"):
        read_csv_catalog(half, ("object_id", "file"), positions_optional=True)
    half_row = tmp_path / "half_row.csv"
    half_row.write_text("object_id,ra,dec,file\na,1,2,a.png\nb,1,,b.png\n")
    with pytest.raises(BadPosition, match=r"half_row\.csv \(object b\)"):
        read_csv_catalog(half_row, ("object_id", "file"), positions_optional=True)


# ---- image folders without a catalogue, recursively


def test_image_folder_without_catalogue_names_objects_by_relative_path(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    png(root / "587722952767439450.png", 100)
    png(root / "sub" / "obj1.JPG", 120)
    png(root / "sub" / "deeper" / "x.jpeg", 140)
    png(root / ".hidden.png", 10)  # hidden files are not objects
    (root / "README.txt").write_text("not an image")
    report = ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.262, bands=("z", "r", "g"))
    accounted(report)
    assert report.n_written == 3 and report.rejected == []
    assert NO_CATALOGUE_NOTE in report.notes
    assert NO_CATALOGUE_NOTE in json.loads((tmp_path / "out" / "ingest_report.json").read_text())["notes"]
    survey = NativeSurvey(tmp_path / "out")
    assert list(survey.catalog["object_id"]) == ["587722952767439450", "sub/deeper/x", "sub/obj1"]
    assert np.isnan(survey.catalog["ra"]).all() and np.isnan(survey.catalog["dec"]).all()
    assert list(survey.catalog["file"]) == ["587722952767439450.png", "sub/deeper/x.jpeg", "sub/obj1.JPG"]
    assert survey.units.rgb == ("z", "r", "g")
    c = survey.cutout(2)
    assert c.object_id == "sub/obj1" and np.isnan(c.ra_deg)


def test_image_folder_ids_from_file_names_must_be_unique(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    png(root / "a.png", 100)
    png(root / "a.jpg", 100)
    with pytest.raises(DuplicateObjectId, match=r"file names.*'a' x2"):
        ImageFolder(root, pixel_scale_arcsec=0.2)
    with pytest.raises(DuplicateObjectId):
        ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.2)
    assert not (tmp_path / "out").exists()


def test_an_empty_folder_without_catalogue_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no catalog.csv and no images"):
        ImageFolder(tmp_path / "empty", pixel_scale_arcsec=0.2)


def test_catalogue_without_positions_is_written_with_unknown_positions(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    png(root / "a.png", 100)
    png(root / "b.png", 150)
    (root / "catalog.csv").write_text("objid,path,z\nA,a.png,0.1\nB,b.png,0.3\n")
    report = ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.262)
    assert report.n_written == 2
    assert any("no ra/dec columns: positions unknown" in n for n in report.notes)
    survey = NativeSurvey(tmp_path / "out")
    assert list(survey.catalog["object_id"]) == ["A", "B"] and np.isnan(survey.catalog["ra"]).all()
    np.testing.assert_allclose(survey.catalog["z"], [0.1, 0.3])


# ---- FITS folders: recursion, positions from the WCS


def test_fits_folder_is_searched_recursively_with_positions_from_the_wcs(tmp_path: Path) -> None:
    root = tmp_path / "stamps"
    for rel, ra in (("a.fits", 150.1), ("sub/b.fits", 150.2), ("sub/inner/c.fits", 150.3), ("d.fits.gz", 150.4)):
        band_fits(root / rel, 1.0, ra=ra, dec=2.5)
    stamps = FitsStamps(root, bands=("i",))
    assert [r.object_id for r in stamps.refs] == ["a/0", "d/0", "sub/b/0", "sub/inner/c/0"]  # sorted paths
    assert list(stamps.catalog["file"]) == ["a.fits", "d.fits.gz", "sub/b.fits", "sub/inner/c.fits"]
    report = ingest(root, "fits", tmp_path / "out", bands=("i",))
    assert report.n_written == 4 and report.units == ("nanomaggies",)  # BUNIT of the stamps
    survey = NativeSurvey(tmp_path / "out")
    # No catalogue: the position is the WCS at the stamp centre (CRPIX there).
    np.testing.assert_allclose(survey.catalog["ra"], [150.1, 150.4, 150.2, 150.3])
    np.testing.assert_allclose(survey.catalog["dec"], 2.5)


# ---- one file per band


def test_band_file_pattern_matches_and_formats() -> None:
    p = BandFilePattern("{id}_{band}.fits", ("g", "r", "z"))
    assert p.match("obj_1_g.fits") == ("obj_1", "g") and p.match("sub/obj1_z.fits") == ("sub/obj1", "z")
    assert p.match("obj1_u.fits") is None and p.match("obj1_g.fits.gz") is None
    assert p.path("obj1", "r") == "obj1_r.fits"
    q = BandFilePattern("{band}/{id}.png", ("g", "r"))
    assert q.match("g/sub/o.png") == ("sub/o", "g") and q.match("i/o.png") is None
    for bad in ("{id}.fits", "{id}_{band}_{band}.fits", "/abs/{id}_{band}.fits", "../{id}_{band}.fits",
                "{id}_{band}_{x}.fits"):
        with pytest.raises(ValueError, match="band_files="):
            BandFilePattern(bad, ("g",))


def test_fits_band_files_assemble_objects_in_band_order_and_reject_a_missing_band(tmp_path: Path) -> None:
    root = tmp_path / "cutouts"
    fills = {"g": 1.0, "r": 2.0, "z": 3.0}
    for band, fill in fills.items():
        band_fits(root / f"obj1_{band}.fits", fill, ra=150.25, dec=2.75)
        band_fits(root / "deep" / f"obj3_{band}.fits", fill, ra=151.0, dec=3.0)
    band_fits(root / "obj2_g.fits", 1.0)
    band_fits(root / "obj2_r.fits", 2.0)  # no z
    band_fits(root / "obj1_u.fits", 9.0)  # a band that is not asked for
    report = ingest(root, "fits", tmp_path / "out", bands=("z", "r", "g"), band_files="{id}_{band}.fits")
    accounted(report)
    assert report.n_written == 2 and [r.object_id for r in report.rejected] == ["obj2"]
    assert report.rejected[0].reason.startswith("MissingBand: no file for band(s) z (looked for obj2_z.fits)")
    assert any("lack a file for some band" in n for n in report.notes)
    assert any("obj1_u.fits" in n and "not read" in n for n in report.notes)
    survey = NativeSurvey(tmp_path / "out")
    assert survey.bands == ("z", "r", "g") and list(survey.catalog["object_id"]) == ["deep/obj3", "obj1"]
    means = np.nanmean(survey.images([1])[0], axis=(1, 2))
    np.testing.assert_allclose(means, [3.0, 2.0, 1.0], atol=0.05)  # planes in the order of --bands
    np.testing.assert_allclose(survey.catalog["ra"], [151.0, 150.25])  # from each object's WCS
    np.testing.assert_allclose(survey.catalog["dec"], [3.0, 2.75])
    assert survey.pixel_scale_arcsec == pytest.approx(0.2) and report.units == ("nanomaggies",) * 3
    assert list(survey.catalog["file_z"]) == ["deep/obj3_z.fits", "obj1_z.fits"]


def test_fits_band_folders_and_per_object_problems(tmp_path: Path) -> None:
    root = tmp_path / "cutouts"
    for band, fill in (("g", 1.0), ("r", 2.0)):
        band_fits(root / band / "good.fits", fill)
        band_fits(root / band / "noscale.fits", fill, ra=None)  # PIXSCALE only: position unknown
    band_fits(root / "g" / "mixed.fits", 1.0, scale=0.2)
    band_fits(root / "r" / "mixed.fits", 2.0, scale=0.3)  # bands disagree on the pixel scale
    band_fits(root / "g" / "cut.fits", 1.0, shape=(64, 64))
    band_fits(root / "r" / "cut.fits", 2.0, shape=(64, 64))
    data = (root / "r" / "cut.fits").read_bytes()
    (root / "r" / "cut.fits").write_bytes(data[: len(data) // 2])  # truncated: that object only
    band_fits(root / "g" / "cube.fits", 1.0, shape=(2, 16, 16))
    band_fits(root / "r" / "cube.fits", 2.0)
    report = ingest(root, "fits", tmp_path / "out", bands=("g", "r"), band_files="{band}/{id}.fits", size_px=16)
    accounted(report)
    assert report.n_written == 2
    reasons = {r.object_id: r.reason.split(":")[0] for r in report.rejected}
    assert reasons == {"cube": "LayoutMismatch", "cut": "CorruptFile", "mixed": "CalibrationError"}
    assert any("1 object(s) have no WCS" in n for n in report.notes)
    survey = NativeSurvey(tmp_path / "out")
    assert list(survey.catalog["object_id"]) == ["good", "noscale"]
    assert survey.catalog["ra"][0] == pytest.approx(150.0) and np.isnan(survey.catalog["ra"][1])


def test_greyscale_band_images_with_and_without_a_catalogue(tmp_path: Path) -> None:
    root = tmp_path / "bands"
    for oid in ("a", "b"):
        png(root / f"{oid}-g.png", 60, mode="L")
        png(root / f"{oid}-r.png", 120, mode="L")
    png(root / "c-g.png", 60, mode="L")
    grey = np.full((16, 16), 200, np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(root / "c-r.png")  # grey saved as RGB: fine
    png(root / "d-g.png", 60, mode="L")
    png(root / "d-r.png", 60, mode="RGB")  # a colour picture is not one band
    report = ingest(root, "images", tmp_path / "out", pixel_scale_arcsec=0.5, bands=("r", "g"),
                    band_files="{id}-{band}.png")
    accounted(report)
    assert report.n_written == 3 and [(r.object_id, r.reason.split(":")[0]) for r in report.rejected] == [
        ("d", "WrongBandCount")]
    assert NO_CATALOGUE_NOTE in report.notes
    survey = NativeSurvey(tmp_path / "out")
    assert survey.bands == ("r", "g") and survey.units.rgb is None
    a = survey.images([0])[0]
    assert a[0].mean() == pytest.approx(120 / 255, abs=0.02) and a[1].mean() == pytest.approx(60 / 255, abs=0.02)
    assert survey.images([2])[0][0].mean() == pytest.approx(200 / 255)

    # With a catalogue the ids (and positions) are its rows; the files follow the pattern.
    (root / "catalog.csv").write_text("object_id,ra,dec\na,10,20\nb,11,21\nmissing,12,22\n")
    report = ingest(root, "images", tmp_path / "out2", pixel_scale_arcsec=0.5, bands=("r", "g"),
                    band_files="{id}-{band}.png")
    assert report.n_written == 2 and report.rejected[0].object_id == "missing"
    assert "MissingBand" in report.rejected[0].reason and "missing-r.png" in report.rejected[0].reason
    survey = NativeSurvey(tmp_path / "out2")
    np.testing.assert_allclose(survey.catalog["ra"], [10, 11])


def test_band_files_need_bands_and_a_folder_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="band_files= needs bands="):
        ingest(tmp_path, "fits", tmp_path / "out", band_files="{id}_{band}.fits")
    with pytest.raises(ValueError, match="not kind 'stein'"):
        ingest(tmp_path / "x.h5", "stein", tmp_path / "out", band_files="{id}_{band}.fits", bands=("g",))


# ---- reorder and rename bands


def test_out_bands_reorder_a_real_rgb_jpeg_and_keep_the_source_colours(tmp_path: Path) -> None:
    root = tmp_path / "hdf"
    root.mkdir()
    shutil.copy(HUBBLE_JPEG, root / "xdf.jpg")
    as_read = ingest(root, "images", tmp_path / "irg", pixel_scale_arcsec=0.06, bands=("i", "r", "g"), size_px=64)
    report = ingest(root, "images", tmp_path / "gri", pixel_scale_arcsec=0.06, bands=("i", "r", "g"), size_px=64,
                    out_bands=("g", "r", "i"))
    assert report.bands == ("g", "r", "i") and report.input_bands == ("i", "r", "g")
    assert any("input bands i,r,g written as g,r,i" in n for n in report.notes)
    irg, gri = NativeSurvey(tmp_path / "irg"), NativeSurvey(tmp_path / "gri")
    assert as_read.n_written == report.n_written == 1 and gri.bands == ("g", "r", "i")
    np.testing.assert_array_equal(gri.images([0])[0], irg.images([0])[0][::-1])
    with Image.open(HUBBLE_JPEG) as img:
        planes = image_planes(img)  # R, G, B of the picture, rows south-up
    h, w = planes.shape[1:]
    centre = planes[:, (h - 64) // 2:(h - 64) // 2 + 64, (w - 64) // 2:(w - 64) // 2 + 64]
    np.testing.assert_array_equal(gri.images([0])[0][0], centre[2])  # g was the picture's blue
    # The units say which bands the JPEG showed as red, green, blue, whatever order is written.
    assert gri.units.rgb == ("i", "r", "g") and gri.units.bands == ("g", "r", "i")
    assert [gri.units.band(b).spread for b in "gri"] == pytest.approx([irg.units.band(b).spread for b in "gri"])

    only_r = ingest(root, "images", tmp_path / "r", pixel_scale_arcsec=0.06, bands=("i", "r", "g"), size_px=64,
                    out_bands=("r",), units="display,display255,display")
    assert only_r.bands == ("r",) and only_r.units == ("display255",)
    np.testing.assert_array_equal(NativeSurvey(tmp_path / "r").images([0])[0][0], centre[1])
    for bad in (("g", "g"), ("u",), ()):
        with pytest.raises(ValueError, match="out_bands="):
            ingest(root, "images", tmp_path / "bad", pixel_scale_arcsec=0.06, bands=("i", "r", "g"),
                   out_bands=bad)
    assert not (tmp_path / "bad").exists()


# ---- the command line


def test_cli_ingest_band_files_out_bands_and_notes(tmp_path: Path) -> None:
    from skysift.cli import cli

    root = tmp_path / "cutouts"
    for band, fill in (("g", 1.0), ("r", 2.0), ("z", 3.0)):
        band_fits(root / f"obj1_{band}.fits", fill)
    r = CliRunner().invoke(cli, ["ingest", str(root), "--kind", "fits", "--out", str(tmp_path / "out"),
                                 "--bands", "g,r,z", "--band-files", "{id}_{band}.fits", "--out-bands", "z,g"],
                           env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "read 1, wrote 1, rejected 0" in r.output and "bands z,g" in r.output
    assert "note: input bands g,r,z written as z,g (--out-bands)" in r.output
    survey = NativeSurvey(tmp_path / "out")
    np.testing.assert_allclose(np.nanmean(survey.images([0])[0], axis=(1, 2)), [3.0, 1.0], atol=0.05)
    help_text = CliRunner().invoke(cli, ["ingest", "--help"], env={"COLUMNS": "300"}).output
    assert "--band-files" in help_text and "--out-bands" in help_text
