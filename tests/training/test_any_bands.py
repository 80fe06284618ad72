"""Training on any survey: any band names and count, reddening only where it can be done, batch and
queue fitted to the survey. Tiny surveys (64 objects, 32 px) and a tiny backbone: seconds per run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from survey.catalog import Catalog
from survey.native import shard_name, write_shard
from training.augment import EXTINCTION, AugmentSettings, UnknownBands, extinction_coeffs, resolve_bands
from training.loop import CHECKPOINT, train
from training.settings import QueueTooLarge, TrainSettings, resolve_sizes

N = 64
TINY = dict(backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=32, proj_dim=16,
            augment=AugmentSettings(crop_size_px=16), workers=0, device="cpu", log_every=1, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_survey(root: Path, bands: tuple[str, ...], ebv: bool = True, labels: bool = False, n: int = N) -> Path:
    """n noisy 32 px stamps of a round source, with PSF and noise columns named after the bands."""
    rng = np.random.default_rng(len(bands))
    size = 32
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    sigma = rng.uniform(1.5, 4.0, n)
    blob = np.exp(-(x**2 + y**2)[None] / (2 * sigma[:, None, None] ** 2))  # (n, H, W)
    flux = rng.uniform(1, 5, (n, len(bands)))
    images = (flux[:, :, None, None] * blob[:, None] + rng.normal(0, 0.05, (n, len(bands), size, size)))
    cols: dict[str, np.ndarray] = {
        "object_id": np.array([f"obj-{i:03d}" for i in range(n)], dtype=object),
        "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-60, 60, n),
        **{f"psf_fwhm_{b}": rng.uniform(0.8, 1.2, n) for b in bands},
        **{f"noise_sigma_{b}": np.full(n, 0.05) for b in bands},
    }
    if ebv:
        cols["ebv"] = rng.uniform(0.0, 0.1, n)
    if labels:
        cols["class"] = np.array(["a", "b"] * (n // 2), dtype=object)
    write_shard(root / shard_name(0), images.astype(np.float32), Catalog(cols), bands, 0.262, "unit")
    return root


def card_of(enc: Path) -> dict:
    return json.loads((enc / "model.json").read_text())


# ---- the extinction table -------------------------------------------------------------------------

@pytest.mark.parametrize(("bands", "system"), [
    ("grz", "decam"), ("griz", "decam"), (["g", "r", "i", "z", "Y"], "decam"), ("ugriz", "sdss"),
    ("grizy", "hsc"), ("ugrizy", "lsst"), (["u", "g", "i", "y"], "lsst"), (["VIS"], "euclid"),
    (["VIS", "Y", "J", "H"], "euclid"), (["vis"], "euclid"), ("G,R,Z", "decam"), (["I_E", "Y_E"], "euclid"),
])
def test_plain_band_names_resolve_to_one_system(bands, system):
    resolved = resolve_bands(bands)
    assert {sys for sys, _ in resolved} == {system}
    coeffs = extinction_coeffs(bands)
    assert coeffs.tolist() == pytest.approx([EXTINCTION[system][k] for _, k in resolved])


def test_qualified_names_pick_their_system():
    names = ["sdss_u", "decam_g", "hsc_i", "HSC-Z", "lsst_y", "rubin_u", "euclid_vis", "Euclid_J"]
    assert resolve_bands(names) == [("sdss", "u"), ("decam", "g"), ("hsc", "i"), ("hsc", "z"), ("lsst", "y"),
                                    ("lsst", "u"), ("euclid", "VIS"), ("euclid", "J")]
    # published values: SF11 Table 6 (SDSS, LSST), the Legacy Surveys' DECam, HSC's pipeline
    assert extinction_coeffs(["sdss_u", "lsst_u", "lsst_y", "decam_g", "hsc_i"]).tolist() == pytest.approx(
        [4.239, 4.145, 1.088, 3.214, 1.633])
    assert extinction_coeffs(["euclid_vis"]).item() == pytest.approx(1.87)  # computed (augment.py says how)


@pytest.mark.parametrize(("bands", "named"), [
    (["W1"], "['W1']"), (["g", "W1"], "['W1']"), (["hsc_u"], "['hsc_u']"),  # HSC has no u
    (["g", "J"], "together"),  # both known, but no one system has both: qualify them
])
def test_unknown_bands_raise_a_named_error(bands, named):
    with pytest.raises(UnknownBands, match=named.replace("[", r"\[").replace("]", r"\]")):
        extinction_coeffs(bands)
    with pytest.raises(KeyError):  # UnknownBands is a KeyError, as the old lookup raised
        resolve_bands(bands)


# ---- batch and queue fitted to the survey ---------------------------------------------------------

def test_default_batch_and_queue_fit_the_survey():
    for n, world in [(64, 1), (240, 1), (1000, 2), (6000, 1), (20_000, 1), (100_000, 4), (4, 1)]:
        s = resolve_sizes(TrainSettings(), n, world)
        glob = s.batch_size * world
        assert 2 <= s.batch_size <= 128 and s.batch_size & (s.batch_size - 1) == 0  # a power of two
        assert s.queue_size % glob == 0 and glob <= s.queue_size <= max(glob, min(4096, n // 4))
        assert s.queue_size <= n - glob, (n, world, s.batch_size, s.queue_size)
    assert (resolve_sizes(TrainSettings(), 20_000).batch_size, resolve_sizes(TrainSettings(), 20_000).queue_size) \
        == (128, 4096)  # large surveys keep the old fixed defaults
    demo = resolve_sizes(TrainSettings(queue_size=1024), 6000)  # skysift demo: --queue-size 1024, 6,000 objects
    assert (demo.batch_size, demo.queue_size) == (128, 1024)


def test_explicit_queue_larger_than_the_survey_is_refused(tmp_path: Path):
    with pytest.raises(QueueTooLarge, match="--queue-size 256 .*use --queue-size 192 or less"):
        resolve_sizes(TrainSettings(batch_size=32, queue_size=256), 240)
    with pytest.raises(QueueTooLarge, match="too small"):
        resolve_sizes(TrainSettings(), 3)
    with pytest.raises(ValueError, match="not a multiple of the global batch 32"):
        resolve_sizes(TrainSettings(batch_size=16, queue_size=48), 240, world=2)
    survey = make_survey(tmp_path / "s", ("g", "r", "z"))
    with pytest.raises(QueueTooLarge, match="--queue-size 64"):  # the whole survey: refused before any step
        train(TrainSettings(survey=survey, out_dir=tmp_path / "run", batch_size=8, queue_size=64, **TINY))
    assert not (tmp_path / "run" / CHECKPOINT).exists()


# ---- training runs --------------------------------------------------------------------------------

def test_one_band_survey_without_ebv_trains_with_reddening_off(tmp_path: Path, caplog):
    survey = make_survey(tmp_path / "vis", ("VIS",), ebv=False)
    s = TrainSettings(survey=survey, out_dir=tmp_path / "run", epochs=2, max_steps=1, monitor_size=16, **TINY)
    with caplog.at_level(logging.WARNING, logger="skysift.train"):
        train(s)
    notes = [r.getMessage() for r in caplog.records if "reddening" in r.getMessage()]
    assert len(notes) == 1 and "no `ebv` column" in notes[0]
    # resumed with the same (auto) settings: the resolved batch and queue match the checkpoint's
    enc = train(s.model_copy(update={"max_steps": 3, "resume": True}))
    card = card_of(enc)
    assert card["preprocess"]["bands"] == ["VIS"]
    st = card["training"]["settings"]
    assert (st["batch_size"], st["queue_size"]) == (8, 16)  # 64 objects: 64/8 = 8, min(4096, 64/4) = 16
    assert st["augment"]["redden"] is False and st["augment"]["blur"] and st["augment"]["noise"]
    assert card["training"]["notes"] == notes and "extinction" not in card["training"]
    assert card["metrics"]["steps"] == 3
    assert torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["settings"]["queue_size"] == 16


def test_unknown_band_switches_reddening_off_with_a_note(tmp_path: Path):
    survey = make_survey(tmp_path / "w", ("W1", "W2"))
    enc = train(TrainSettings(survey=survey, out_dir=tmp_path / "run", max_steps=1, monitor_size=0, **TINY))
    card = card_of(enc)
    assert card["preprocess"]["bands"] == ["W1", "W2"]
    assert card["training"]["settings"]["augment"]["redden"] is False
    [note] = card["training"]["notes"]
    assert note.startswith("reddening augmentation off: no extinction coefficient for band(s) ['W1', 'W2']")


def test_four_band_lsst_survey_trains_from_the_cli_with_reddening_on(tmp_path: Path):
    from skysift.cli import cli

    survey = make_survey(tmp_path / "ugiy", ("u", "g", "i", "y"), labels=True)
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, [
        "train", "--survey", str(survey), "--out", str(out), "--max-steps", "2", "--crop-size", "16",
        "--backbone-kwargs", json.dumps(TINY["backbone_kwargs"]), "--proj-dim", "16", "--proj-hidden", "32",
        "--workers", "0", "--device", "cpu", "--log-every", "1", "--monitor-size", "32",
    ])
    assert res.exit_code == 0, res.output
    card = card_of(out / "encoder")
    assert card["preprocess"]["bands"] == ["u", "g", "i", "y"]
    tr = card["training"]
    assert tr["settings"]["augment"]["redden"] is True and "notes" not in tr
    assert [tr["extinction"][b]["filter"] for b in "ugiy"] == ["lsst_u", "lsst_g", "lsst_i", "lsst_y"]
    assert [tr["extinction"][b]["a_over_ebv"] for b in "ugiy"] == pytest.approx([4.145, 3.237, 1.684, 1.088])
    assert tr["settings"]["queue_size"] <= N and "knn_precision_at_10" in card["metrics"]  # the monitor ran
