"""Catalogues in the field's format: a Multimodal Universe (MMU) file set in, a HATS catalogue out.

The MMU set is written here with h5py the way the MMU build scripts lay it out
(<sample>/healpix=<N>/001-of-001.hdf5, nside-16 nested pixels; object_id, ra, dec, healpix,
image_array (N, C, H, W), image_band "des-g" ..., image_scale, image_psf_fwhm, image_ivar, z_spec),
ingested, encoded with an untrained tiny encoder, indexed, exported with `skysift export-hats`, then
opened with lsdb and cross-matched with a second catalogue of offset positions."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy import units as u
from astropy_healpix import HEALPix

from survey.ingest import ingest
from survey.native import NativeSurvey
from survey.readers.errors import (
    BandMismatch,
    CorruptFile,
    DuplicateObjectId,
    LayoutMismatch,
    MissingKey,
    WrongBandCount,
)
from survey.readers.mmu import MmuReader

# lsdb 0.11 and nested-pandas 0.7 call pandas APIs that pandas 3.1 deprecates (inplace=,
# mode.chained_assignment): their warnings, not ours; any other warning still shows.
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:lsdb"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:nested_pandas")]

NSIDE = 16
SIZE = 32
BANDS = ("des-g", "des-r", "des-z")
CENTRES = ((150.0, 2.0), (160.0, 2.0), (170.0, -5.0))  # three different nside-16 pixels
EMPTY = (1, 5)  # (file, object): band r has ivar 0 everywhere -> rejected as a NaN-only stamp
HOLE = (0, 3)  # (file, object): one pixel with ivar 0 -> NaN in the native shard


def write_mmu(root: Path, n_per_file: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Three MMU files of `n_per_file` 3-band 32x32 stamps; returns what was written, in file order."""
    rng = np.random.default_rng(seed)
    hp = HEALPix(nside=NSIDE, order="nested")
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    written: dict[str, list[np.ndarray]] = {"object_id": [], "ra": [], "dec": [], "image": [], "z": [], "file": []}
    pixels = sorted(int(hp.lonlat_to_healpix(lon * u.deg, lat * u.deg)) for lon, lat in CENTRES)
    for f, pix in enumerate(pixels):  # in pixel order: the order the reader lists the files in
        c_ra, c_dec = (q.to_value(u.deg) for q in hp.healpix_to_lonlat(pix))
        n = n_per_file
        ra = c_ra + rng.uniform(-0.2, 0.2, n)
        dec = c_dec + rng.uniform(-0.2, 0.2, n)
        ids = 5_000_000 + 1000 * f + np.arange(n)  # integers, as ssl_legacysurvey's object_id
        sigma = rng.uniform(1.5, 6.0, n)
        q = rng.uniform(0.3, 1.0, n)
        colour = rng.uniform(0.5, 2.0, (n, 3))
        r2 = xx[None] ** 2 + (yy[None] / q[:, None, None]) ** 2
        blob = np.exp(-0.5 * r2 / sigma[:, None, None] ** 2)  # (n, H, W)
        images = (colour[:, :, None, None] * blob[:, None] + rng.normal(0, 0.01, (n, 3, SIZE, SIZE)))
        ivar = np.full(images.shape, 1e4, dtype=np.float32)
        if f == EMPTY[0] and n > EMPTY[1]:
            ivar[EMPTY[1], 1] = 0.0
        if f == HOLE[0] and n > HOLE[1]:
            ivar[HOLE[1], 0, 2, 3] = 0.0
        z = rng.uniform(0.05, 0.5, n).astype(np.float32)
        path = root / "north" / f"healpix={pix}" / "001-of-001.hdf5"
        path.parent.mkdir(parents=True)
        with h5py.File(path, "w") as h:
            h["object_id"] = ids
            h["ra"], h["dec"] = ra, dec
            h["healpix"] = np.full(n, pix)
            h["image_array"] = images.astype(np.float32)
            # fixed-length UTF-8, as the MMU scripts write it (h5py.string_dtype("utf-8", 5))
            h["image_band"] = np.array([[b.encode() for b in BANDS]] * n, dtype=h5py.string_dtype("utf-8", 5))
            h["image_scale"] = np.full((n, 3), 0.262, dtype=np.float32)
            h["image_psf_fwhm"] = np.tile(np.float32([1.3, 1.2, 1.1]), (n, 1))
            h["image_ivar"] = ivar
            h["image_mask"] = np.ones((n, SIZE, SIZE), dtype=bool)
            h["z_spec"] = z
            h["ebv"] = np.full(n, 0.03, dtype=np.float32)
        for key, value in (("object_id", ids), ("ra", ra), ("dec", dec), ("image", images), ("z", z),
                           ("file", np.full(n, f))):
            written[key].append(value)
    return {k: np.concatenate(v) for k, v in written.items()}


def _first_file(root: Path) -> Path:
    return MmuReader(root).files[0]


def test_ingest_maps_the_mmu_layout_onto_native_shards(tmp_path: Path) -> None:
    truth = write_mmu(tmp_path / "mmu")
    report = ingest(tmp_path / "mmu", "mmu", tmp_path / "native", shard_size=25)
    empty_id = str(truth["object_id"][(truth["file"] == EMPTY[0]).argmax() + EMPTY[1]])
    assert (report.n_read, report.n_written) == (60, 59)
    assert [(r.object_id, r.reason.split(":")[0]) for r in report.rejected] == [(empty_id, "EmptyStamp")]
    assert "band(s) r" in report.rejected[0].reason and "healpix=" in report.rejected[0].source
    assert report.bands == ("g", "r", "z") and report.units == ("nanomaggies",) * 3
    assert report.pixel_scale_arcsec == pytest.approx(0.262) and report.image_shape == (3, SIZE, SIZE)
    assert any("des-g,des-r,des-z named g,r,z" in note for note in report.notes)

    survey = NativeSurvey(tmp_path / "native")
    keep = np.array([str(i) != empty_id for i in truth["object_id"]])
    cat = survey.catalog
    assert cat["object_id"].tolist() == [str(i) for i in truth["object_id"][keep]]
    np.testing.assert_allclose(cat["ra"], truth["ra"][keep])
    np.testing.assert_allclose(cat["z_spec"], truth["z"][keep], rtol=1e-6)
    folders = {int(p.parent.name.split("=")[1]) for p in MmuReader(tmp_path / "mmu").files}
    assert set(cat["mmu_healpix"].tolist()) == folders and len(folders) == 3
    np.testing.assert_allclose(cat["psf_fwhm_r"], 1.2, rtol=1e-6)
    assert "healpix" not in cat.columns and "image_ivar" not in cat.columns
    # pixels as stored, except where image_ivar == 0 (no exposure): NaN
    row = 10
    np.testing.assert_array_equal(survey.images([row])[0], truth["image"][keep][row].astype(np.float32))
    hole = survey.images([HOLE[1]])[0]
    assert np.isnan(hole[0, 2, 3]) and np.isnan(hole).sum() == 1


def test_dr10_style_file_string_ids_upper_case_positions_and_no_image_scale(tmp_path: Path) -> None:
    """legacysurvey DR10 in MMU: ids '<BRICKNAME>-<OBJID>', RA/DEC, 4 bands; here without image_scale."""
    rng = np.random.default_rng(3)
    path = tmp_path / "legacysurvey" / "dr10_south_21" / "healpix=1500" / "001-of-001.hdf5"
    path.parent.mkdir(parents=True)
    n = 5
    hp = HEALPix(nside=NSIDE, order="nested")
    ra, dec = (np.full(n, q.to_value(u.deg)) + rng.uniform(-0.1, 0.1, n) for q in hp.healpix_to_lonlat(1500))
    with h5py.File(path, "w") as h:
        h["object_id"] = np.array([f"1234p567-{i}".encode() for i in range(n)], dtype=h5py.string_dtype("utf-8", 16))
        h["RA"], h["DEC"], h["healpix"] = ra, dec, np.full(n, 1500)
        h["image_array"] = rng.normal(0, 1, (n, 4, 16, 16)).astype(np.float32)
        h["image_band"] = np.array([[b"des-g", b"des-r", b"des-i", b"des-z"]] * n, dtype=h5py.string_dtype("utf-8", 5))
        h["TYPE"] = np.array([b"SER", b"EXP", b"DEV", b"REX", b"SER"])
        h["catalog"] = np.zeros((n, 8), dtype=np.float32)  # not one value or one per band: not a column
    with MmuReader(tmp_path / "legacysurvey") as r:
        assert r.catalog["object_id"].tolist() == [f"1234p567-{i}" for i in range(n)]
        np.testing.assert_allclose(r.catalog["ra"], ra)
        assert r.bands == ("g", "r", "i", "z") and r.units == "nanomaggies"
        assert r.pixel_scale_arcsec == pytest.approx(0.262) and any("0.262" in note for note in r.notes)
        assert r.catalog["TYPE"].tolist() == ["SER", "EXP", "DEV", "REX", "SER"]
        assert "catalog" in r.ignored_keys
    from survey.readers.errors import CalibrationError

    other = path.rename(tmp_path / "hsc.hdf5")  # not Legacy Survey: no scale to assume
    _rewrite(other, image_band=np.array([[b"hsc-g", b"hsc-r", b"hsc-i", b"hsc-z"]] * n))
    with pytest.raises(CalibrationError, match=f"{other}: no image_scale"):
        MmuReader(other)
    with MmuReader(other, pixel_scale_arcsec=0.168) as r:
        assert (r.pixel_scale_arcsec, r.units, r.bands) == (0.168, "flux", ("g", "r", "i", "z"))


def _rewrite(path: Path, **changes: object) -> None:
    with h5py.File(path, "a") as h:
        for key, value in changes.items():
            if key in h:
                del h[key]
            if value is not None:
                h[key] = value


def test_malformed_mmu_files_raise_named_errors_naming_the_file(tmp_path: Path) -> None:
    def fresh(name: str) -> tuple[Path, Path]:
        root = tmp_path / name
        write_mmu(root, n_per_file=4)
        return root, _first_file(root)

    root, path = fresh("no_band")
    _rewrite(path, image_band=None)
    with pytest.raises(MissingKey, match=r"healpix=\d+/001-of-001.hdf5.*image_band"):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("garbage")
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(CorruptFile, match=str(path)):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("dup")
    with h5py.File(MmuReader(root).files[1], "r") as h:
        other_ids = h["object_id"][()]
    _rewrite(path, object_id=other_ids)
    with pytest.raises(DuplicateObjectId, match=f"'{other_ids[0]}' x2"):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("pixel")
    _rewrite(path, healpix=np.full(4, 7))
    with pytest.raises(LayoutMismatch, match=r"'healpix' holds \[7, 7, 7\] but the file is in folder healpix="):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("short_ra")
    _rewrite(path, ra=np.zeros(3))
    with pytest.raises(LayoutMismatch, match=r"'ra' must have one value per object \(4\), got \(3,\)"):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("planes")
    _rewrite(path, image_band=np.array([[b"des-g", b"des-r"]] * 4))
    with pytest.raises(WrongBandCount, match=str(path)):
        ingest(root, "mmu", tmp_path / "out")

    root, path = fresh("other_bands")
    _rewrite(MmuReader(root).files[2], image_band=np.array([[b"des-g", b"des-r", b"des-i"]] * 4))
    with pytest.raises(BandMismatch, match="des-g,des-r,des-i"):
        ingest(root, "mmu", tmp_path / "out")

    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutMismatch, match="no MMU files"):
        ingest(tmp_path / "empty", "mmu", tmp_path / "out")
    assert not (tmp_path / "out").exists(), "a whole-input error writes no shard"


def test_mmu_in_hats_out_crossmatches_with_lsdb(tmp_path: Path) -> None:
    import lsdb
    import pandas as pd
    from typer.testing import CliRunner

    from encoder.card import ModelCard
    from encoder.preprocess import PreprocessConfig
    from encoder.weights import build_encoder, save_encoder
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from skysift.cli import cli

    write_mmu(tmp_path / "mmu")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "mmu"), "--kind", "mmu", "--out", str(tmp_path / "native")])
    assert r.exit_code == 0, r.output
    assert "read 60, wrote 59, rejected 1" in r.output

    pre = PreprocessConfig(bands=("g", "r", "z"), pixel_scale_arcsec=0.262, input_size_px=SIZE, band_scale=(0.01,) * 3)
    card = ModelCard(backbone="resnet18", backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8},
                     embedding_dim=64, projection_dim=16, projection_hidden=32, preprocess=pre, produced_by="test")
    save_encoder(build_encoder(card).eval(), card, tmp_path / "encoder")  # untrained: the plumbing is under test
    index_survey(IndexSettings(survey=tmp_path / "native", encoder=tmp_path / "encoder", artifacts=tmp_path / "art",
                               device="cpu", recall_sample=20, map_method="pca", shard_size=64))

    k = 4
    r = CliRunner().invoke(cli, ["export-hats", "--artifacts", str(tmp_path / "art"), "--out", str(tmp_path / "hats"),
                                 "--name", "mmu_sim", "--k", str(k), "--columns", "z_spec,mmu_healpix"])
    assert r.exit_code == 0, r.output
    assert "59 of 59 objects" in r.output

    # What the export must say, from the version's own files: the exact k nearest by cosine.
    version = (tmp_path / "art" / "current").resolve()
    ids = pd.read_parquet(version / "catalog.parquet")["object_id"].to_numpy()
    emb = np.load(version / "embeddings.npy").astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    expected = {ids[i]: (list(ids[order[i]]), 1 - sims[i, order[i]]) for i in range(len(ids))}

    cat = lsdb.open_catalog(tmp_path / "hats" / "mmu_sim")
    assert {"object_id", "ra", "dec", "anomaly_score", "lens_score", "quality_score", "combined_score", "z_spec",
            "mmu_healpix", *(f"nbr_{j}" for j in range(1, k + 1)), *(f"nbr_dist_{j}" for j in range(1, k + 1))
            } <= set(cat.columns)
    whole = cat.compute()
    assert len(whole) == 59 and set(whole["object_id"]) == set(ids)

    # A second catalogue: 12 of the objects, moved by 0.3-0.8 arcsec, plus one far from everything.
    pick = ids[::5]
    native = pd.read_parquet(version / "catalog.parquet").set_index("object_id").loc[pick]
    rng = np.random.default_rng(1)
    off = rng.uniform(0.3, 0.8, len(pick)) / 3600
    angle = rng.uniform(0, 2 * np.pi, len(pick))
    other = pd.DataFrame({
        "their_id": [f"x{i}" for i in range(len(pick))] + ["far"],
        "ra": np.append(native["ra"] + off * np.cos(angle) / np.cos(np.radians(native["dec"])), 10.0),
        "dec": np.append(native["dec"] + off * np.sin(angle), 10.0),
    })
    matched = cat.crossmatch(lsdb.from_dataframe(other, ra_column="ra", dec_column="dec"), radius_arcsec=1.0,
                             suffixes=("", "_other"), suffix_method="overlapping_columns").compute()
    pairs = dict(zip(matched["their_id"], matched["object_id"], strict=True))
    assert pairs == {f"x{i}": oid for i, oid in enumerate(pick)}
    assert (matched["_dist_arcsec"] < 0.81).all()
    for _, row in matched.iterrows():
        nbrs, dist = expected[row["object_id"]]
        assert [row[f"nbr_{j}"] for j in range(1, k + 1)] == nbrs
        np.testing.assert_allclose([row[f"nbr_dist_{j}"] for j in range(1, k + 1)], dist, atol=2e-3)
        assert row["object_id"] not in nbrs
        assert row["z_spec"] == pytest.approx(native.loc[row["object_id"], "z_spec"])

    # The version and the distance are recorded in the catalogue's properties.
    props = (tmp_path / "hats" / "mmu_sim" / "hats.properties").read_text()
    assert f"skysift_version={version.name}" in props.replace(" ", "")
    assert not list((tmp_path / "hats").glob(".*partial")), "the staging folder is gone"

    again = CliRunner().invoke(cli, ["export-hats", "--artifacts", str(tmp_path / "art"), "--out",
                                     str(tmp_path / "hats"), "--name", "mmu_sim"])
    assert again.exit_code == 1 and "already exists" in again.stderr
