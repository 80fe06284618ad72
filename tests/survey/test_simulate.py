"""The simulated survey: sizes, byte-for-byte determinism (whatever the number of workers, across
a resumed run), a catalog that agrees with its pixels, and physics that behaves like a sky."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import galsim
import numpy as np
import pytest
from scipy.signal import fftconvolve
from scipy.stats import spearmanr

from survey.native import NativeSurvey
from survey.simulate import galaxies
from survey.simulate.artifacts import ARTIFACT_KINDS
from survey.simulate.physics import CLASSES
from survey.simulate.population import draw_population
from survey.simulate.settings import PRESETS, SimSettings
from survey.simulate.survey import EXTINCTION_COEFFS, SETTINGS_FILE, simulate

SEED = 3


def _settings(out: Path, seed: int = SEED, workers: int = 1, **kw) -> SimSettings:
    # Raised lens and artifact fractions so that every rendering path is in the byte comparison.
    base = {"preset": "tiny", "shard_size": 100, "lens_fraction": 0.05, "artifact_fraction": 0.05}
    return SimSettings(out_dir=out, seed=seed, workers=workers, **{**base, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sim")
    out = {"w1": root / "w1", "w2": root / "w2", "other_seed": root / "other_seed"}
    simulate(_settings(out["w1"], workers=1))
    simulate(_settings(out["w2"], workers=2))
    simulate(_settings(out["other_seed"], seed=SEED + 1, workers=2, n_objects=60))
    return out


def _shards(d: Path) -> list[Path]:
    return sorted(d.glob("shard-*.h5"))


def test_presets_and_bench_size():
    assert PRESETS["bench"] >= 100_000 and SimSettings(preset="bench").size >= 100_000
    assert SimSettings(preset="tiny").size == 240 and SimSettings(preset="demo").size == 6000
    assert SimSettings(preset="tiny", n_objects=17).size == 17
    with pytest.raises(ValueError):
        SimSettings(preset="tiny", not_a_setting=1)  # extra="forbid": a typo stops the run


def test_same_seed_same_bytes_whatever_the_workers(runs):
    a, b = _shards(runs["w1"]), _shards(runs["w2"])
    assert [p.name for p in a] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    assert [p.name for p in b] == [p.name for p in a]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.name} differs between 1 and 2 workers"
    sa, sb = NativeSurvey(runs["w1"]), NativeSurvey(runs["w2"])
    ia, ib = sa.images(np.arange(len(sa))), sb.images(np.arange(len(sb)))
    assert ia.tobytes() == ib.tobytes()
    settings = json.loads((runs["w1"] / SETTINGS_FILE).read_text())
    assert settings["seed"] == SEED and settings["n_objects"] == 240


def test_other_seed_other_pixels_and_catalog(runs):
    a, c = NativeSurvey(runs["w1"]), NativeSurvey(runs["other_seed"])
    assert len(c) == 60
    ia, ic = a.images(np.arange(60)), c.images(np.arange(60))
    assert not np.array_equal(ia, ic)
    assert np.mean(ia == ic) < 1e-3  # not just one object: (almost) every pixel differs
    assert not np.array_equal(a.catalog["z"][:60], c.catalog["z"])


def test_killed_run_resumes_to_the_same_bytes(runs, tmp_path: Path):
    d = tmp_path / "resumed"
    shutil.copytree(runs["w1"], d)
    (d / "shard-00001.h5").unlink()
    (d / "shard-00002.h5").rename(d / "shard-00002.h5.partial")  # a worker died mid-write
    seen: list[int] = []
    simulate(_settings(d, workers=2), on_shard=seen.append)
    assert sorted(seen) == [40, 100, 100]  # every shard is reported, finished ones too
    for pa, pb in zip(_shards(runs["w1"]), _shards(d), strict=True):
        assert pa.read_bytes() == pb.read_bytes()


def test_catalog_content_and_truth(runs):
    s = NativeSurvey(runs["w1"])
    cat = s.catalog
    assert s.image_shape == (3, 64, 64) and s.bands == ("g", "r", "z") and s.pixel_scale_arcsec == 0.262
    for col in ("class", "z", "mag_g", "mag_r", "mag_z", "ebv", "hlr_arcsec", "is_lens", "einstein_radius_arcsec",
                "artifact_kind", "psf_fwhm_r", "depth_r", "noise_sigma_r"):
        assert col in cat, col
    assert set(cat["class"]) <= set(CLASSES) | {"lens"}
    assert set(cat["artifact_kind"]) - {""} <= set(ARTIFACT_KINDS)
    lens = cat["class"] == "lens"
    assert lens.sum() == 12 and np.array_equal(lens, cat["is_lens"])
    assert np.all(cat["einstein_radius_arcsec"][lens] > 0) and np.all(cat["einstein_radius_arcsec"][~lens] == 0)
    assert np.all(cat["z_source"][lens] > cat["z"][lens])
    assert np.all(cat["artifact_kind"][lens] == "")  # artifacts go on non-lenses only
    assert np.all(cat["z"][cat["class"] == "star"] == 0)
    assert (cat["artifact_kind"] != "").sum() == 12
    images = s.images(np.arange(len(s)))
    assert images.dtype == np.float32 and np.isfinite(images).all()


def test_catalog_magnitudes_and_noise_agree_with_the_pixels(runs):
    s = NativeSurvey(runs["w1"])
    cat = s.catalog
    clean = np.nonzero(cat["artifact_kind"] == "")[0]
    images = s.images(clean).astype(np.float64)
    for c, b in enumerate(s.bands):
        # total flux in the stamp = catalog flux (the model's flux after extinction) + noise
        flux = images[:, c].sum(axis=(1, 2))
        expected = 10 ** (-0.4 * (cat[f"mag_{b}"][clean] - 22.5))
        noise = 64 * cat[f"noise_sigma_{b}"][clean]  # sigma of a sum over 64 x 64 pixels
        pull = (flux - expected) / noise
        assert abs(np.median(pull)) < 0.5 and 0.6 < np.std(pull) < 1.5, b
        # sky noise measured in a 6-px frame of each stamp (galaxy light there is small)
        frame = np.concatenate([images[:, c, :6], images[:, c, -6:]], axis=1).reshape(len(clean), -1)
        mad = np.median(np.abs(frame - np.median(frame, 1, keepdims=True)), 1)
        ratio = 1.4826 * mad / cat[f"noise_sigma_{b}"][clean]
        assert 0.9 < np.median(ratio) < 1.1, b


def _half_light_radius_px(img: np.ndarray, r_max: float = 24.0) -> float:
    """Radius holding half the flux inside r_max (curve of growth around the stamp centre)."""
    h, w = img.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).ravel()
    keep = r < r_max
    order = np.argsort(r[keep])
    growth = np.cumsum(img.ravel()[keep][order])
    return float(r[keep][order][np.searchsorted(growth, 0.5 * growth[-1])])


def test_far_galaxies_are_smaller_and_fainter_in_the_pixels(runs):
    s = NativeSurvey(runs["w1"])
    cat = s.catalog
    gal = np.nonzero(np.isin(cat["class"], list(galaxies_classes())) & (cat["artifact_kind"] == ""))[0]
    images = s.images(gal)
    z = cat["z"][gal]
    hlr = np.array([_half_light_radius_px(im[1]) for im in images])
    flux = images[:, 1].sum(axis=(1, 2))
    near, far = z < np.median(z), z >= np.median(z)
    assert np.median(hlr[far]) < np.median(hlr[near])
    assert np.median(flux[far]) < np.median(flux[near])
    # weak but significant in pixels: the PSF (hlr ~2.4 px) dominates the small ones, and a flux-limited
    # sample keeps only the big, bright galaxies at high z (~200 galaxies here: p ~ 0.01 at -0.15)
    assert spearmanr(z, hlr).statistic < -0.1 and spearmanr(z, flux).statistic < -0.3


def galaxies_classes() -> tuple[str, ...]:
    return tuple(c for c in CLASSES if c != "star")


def test_population_sizes_magnitudes_and_colours_with_redshift():
    cat = draw_population(SimSettings(preset="demo", n_objects=30_000, seed=11))
    kind, z = cat["class"], cat["z"]
    gal = np.isin(kind, list(galaxies_classes()))
    # mean size falls and mean magnitude rises from each redshift quartile to the next
    edges = np.quantile(z[gal], [0.25, 0.5, 0.75])
    quartile = np.digitize(z[gal], edges)
    hlr = [cat["hlr_arcsec"][gal][quartile == i].mean() for i in range(4)]
    mag = [cat["mag_r_intrinsic"][gal][quartile == i].mean() for i in range(4)]
    assert np.all(np.diff(hlr) < 0) and np.all(np.diff(mag) > 0), (hlr, mag)
    assert np.all(cat["mag_r_intrinsic"][gal] < 19.5)  # magnitude limited
    # at the same redshift, early types are redder in g-r than irregulars
    bins = np.arange(0.02, 0.5, 0.04)
    checked = 0
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        in_bin = (z >= lo) & (z < hi)
        ell, irr = in_bin & (kind == "elliptical"), in_bin & (kind == "irregular")
        if ell.sum() >= 20 and irr.sum() >= 20:
            assert np.median(cat["g_r"][ell]) > np.median(cat["g_r"][irr]) + 0.3, (lo, hi)
            checked += 1
    assert checked >= 4
    # and every type reddens with z (the 4000 A break moving through g)
    for k in galaxies_classes():
        sel = kind == k
        assert spearmanr(z[sel], cat["g_r"][sel]).statistic > 0.3, k


def test_early_types_redder_than_irregulars_in_the_pixels(runs):
    s = NativeSurvey(runs["w1"])
    cat = s.catalog
    g_r = cat["mag_g"] - cat["mag_r"]  # measured on the rendered images (after extinction)
    g_r = g_r - (EXTINCTION_COEFFS["g"] - EXTINCTION_COEFFS["r"]) * cat["ebv"]  # de-reddened, as an astronomer would
    ell = np.nonzero(cat["class"] == "elliptical")[0]
    irr = np.nonzero(cat["class"] == "irregular")[0]
    assert len(ell) >= 10 and len(irr) >= 10
    # pair each irregular with the elliptical nearest in z
    nearest = ell[np.abs(cat["z"][ell][None, :] - cat["z"][irr][:, None]).argmin(axis=1)]
    assert np.mean(g_r[nearest] > g_r[irr]) > 0.85


def test_knots_match_galsim_sum_of_gaussians():
    """The numpy knot renderer (spiral arms, merger tails) against the GalSim Sum it replaced."""
    rng = np.random.default_rng(0)
    knots = galaxies._spiral_knots(rng, 1.5, 2, 25)
    q, beta, offset, fwhm = 0.6, 40 * galsim.degrees, (0.3, -0.2), 1.3
    ref_profile = galsim.Add([galsim.Gaussian(sigma=s, flux=1.0).shift(x, y) for x, y, s in knots])
    ref = galsim.Convolve(ref_profile.withFlux(1.0).shear(q=q, beta=beta), galsim.Moffat(beta=3.5, fwhm=fwhm))
    ref_img = ref.drawImage(nx=64, ny=64, scale=0.262, offset=offset).array
    kernel = galaxies.moffat_kernel(fwhm, 0.262)
    unit = galaxies._knot_set(knots).shear(q, beta).draw(64, 0.262, kernel.shape[0] // 2, offset)
    img = fftconvolve(unit, kernel, mode="valid")
    assert img.shape == (64, 64)
    assert abs(img.sum() - ref_img.sum()) < 0.01
    assert np.abs(img - ref_img).sum() < 0.03  # < 3 % of the flux moved (knots stay round under shear)
    yy, xx = np.mgrid[:64, :64]
    for a in (img, ref_img):  # same centroid, so the offset and shear conventions agree
        assert abs((a * xx).sum() / a.sum() - (ref_img * xx).sum() / ref_img.sum()) < 0.05
        assert abs((a * yy).sum() / a.sum() - (ref_img * yy).sum() / ref_img.sum()) < 0.05


def test_cli_simulate(tmp_path: Path):
    from typer.testing import CliRunner

    from skysift.cli import cli

    r = CliRunner().invoke(cli, ["simulate", "--preset", "tiny", "--n", "12", "--seed", "5", "--workers", "1",
                                 "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert len(NativeSurvey(tmp_path / "s")) == 12


def test_every_catalog_column_is_documented_and_figures_render(runs, tmp_path: Path):
    from PIL import Image

    from survey.simulate.columns import describe
    from survey.simulate.figures import columns_markdown, write_histograms, write_sheets

    s = NativeSurvey(runs["w1"])
    for name in s.catalog.names:
        unit, meaning = describe(name)  # KeyError names an undocumented column
        assert meaning
    assert describe("psf_fwhm_g")[0] == "arcsec" and describe("noise_sigma_z")[0] == "nanomaggies/pixel"
    table = columns_markdown(s).splitlines()
    assert len(table) == 2 + len(s.catalog.names)
    paths = write_sheets(s, tmp_path, per=4, scale=2)
    assert tmp_path / "survey_lens.png" in paths and tmp_path / "survey_spiral.png" in paths
    assert Image.open(tmp_path / "survey_lens.png").size == (4 * 128 + 3 * 2, 128)
    assert write_histograms(s, tmp_path / "h.png").stat().st_size > 10_000


def test_resuming_into_a_folder_of_another_survey_is_refused(runs, tmp_path: Path):
    from survey.errors import SurveyError

    d = tmp_path / "mixed"
    shutil.copytree(runs["other_seed"], d)
    with pytest.raises(SurveyError, match=r"other settings \(n_objects, seed\)"):
        simulate(_settings(d, workers=1))
