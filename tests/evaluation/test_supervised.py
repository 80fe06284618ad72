"""The supervised CNN baseline and its metrics: hand-made cases with known answers, a task a CNN
must learn in a few steps, the leak check, and a smoke run on the tiny simulated survey."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.supervised import (
    DEFAULT_BACKBONE,
    DEFAULT_BACKBONE_KWARGS,
    Target,
    border_features,
    classification_metrics,
    leak_check,
    photoz_metrics,
    predict,
    split_rows,
    survey_preprocess_config,
    train_supervised,
)

TINY_NET = {"channels": [8, 16, 32, 64], "stem_width": 8}


def test_photoz_metrics_perfect_and_constant_predictors():
    z = np.array([0.0, 1.0, 3.0])
    perfect = photoz_metrics(z, z)
    assert perfect == {"sigma_mad": 0.0, "outlier_fraction": 0.0, "bias": 0.0, "n": 3}
    # always 1.0: dz = (1 - z) / (1 + z) = [1, 0, -0.5]; median 0; |dz - 0| = [1, 0, 0.5] -> median 0.5
    const = photoz_metrics(np.ones(3), z)
    assert const["sigma_mad"] == pytest.approx(1.4826 * 0.5)
    assert const["outlier_fraction"] == pytest.approx(2 / 3) and const["bias"] == 0.0
    # a constant offset in dz has zero scatter but is all outliers and all bias
    z = np.array([0.1, 0.3, 0.5, 0.9])
    shifted = photoz_metrics(z + 0.1 * (1 + z), z)
    assert shifted["sigma_mad"] == pytest.approx(0.0, abs=1e-12)
    assert shifted["outlier_fraction"] == 1.0 and shifted["bias"] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        photoz_metrics(np.ones(2), np.ones(3))


def test_classification_metrics_hand_made():
    true = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 2])
    m = classification_metrics(pred, true, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(0.8)
    # F1: a = 2/3 (P 1, R 1/2), b = 0.8 (P 2/3, R 1), c = 1; d is absent from both -> not averaged
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 1) / 3)
    assert m["recall"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert m["support"] == {"a": 2, "b": 2, "c": 1, "d": 0}
    assert m["confusion"][0] == [1, 1, 0, 0] and np.asarray(m["confusion"]).shape == (4, 4)
    chance = classification_metrics(np.zeros(5, int), true, ["a", "b", "c", "d"])
    assert chance["accuracy"] == pytest.approx(0.4)  # the majority class's share
    assert chance["macro_f1"] == pytest.approx((2 * 0.4 * 1 / (0.4 + 1)) / 3)


def test_split_rows_is_a_seeded_partition():
    tr, te = split_rows(100, 0.25, seed=3)
    assert len(te) == 25 and len(tr) == 75
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(100))
    tr2, te2 = split_rows(100, 0.25, seed=3)
    assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
    assert not np.array_equal(te, split_rows(100, 0.25, seed=4)[1])


def test_border_features_measure_sky_not_the_object():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.02, size=(50, 2, 32, 32)).astype(np.float32)
    x[:, 1] += 0.5  # sky level in band 2
    x[:, :, 12:20, 12:20] += 100.0  # a bright object far from the border
    f = border_features(x, width=4)
    assert f.shape == (50, 6)
    np.testing.assert_allclose(f[:, :2].mean(0), [0.0, 0.5], atol=0.005)  # median
    np.testing.assert_allclose(f[:, 2:4].mean(0), [0.02, 0.02], rtol=0.1)  # robust sigma
    np.testing.assert_allclose(f[:, 4:].mean(0), [0.0, 0.5], atol=0.005)  # mean


def test_leak_check_separates_noise_from_signal():
    rng = np.random.default_rng(1)
    n = 600
    labels = rng.integers(0, 3, n)
    tr, te = split_rows(n, 0.3, seed=0)
    out = leak_check({"noise": rng.normal(size=(n, 4)), "signal": labels[:, None] + rng.normal(0, 0.1, (n, 1))},
                     labels, ["a", "b", "c"], train_rows=tr, test_rows=te)
    assert out["noise"]["accuracy"] < 0.45  # chance 1/3
    assert out["signal"]["accuracy"] > 0.95 and out["signal"]["n_features"] == 1


def test_backbone_defaults_match_the_contrastive_encoder():
    from training.settings import TrainSettings

    t = TrainSettings()
    assert (DEFAULT_BACKBONE, DEFAULT_BACKBONE_KWARGS) == (t.backbone, t.backbone_kwargs)


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half the stamps hold a Gaussian blob of random amplitude, half only noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.0, (n, 3, 40, 40)).astype(np.float32)
    label = rng.integers(0, 2, n)
    amp = np.where(label == 1, rng.uniform(5, 30, n), np.nan)
    yy, xx = np.mgrid[:40, :40]
    blob = np.exp(-((yy - 19.5) ** 2 + (xx - 19.5) ** 2) / (2 * 3.0**2)).astype(np.float32)
    x += (np.nan_to_num(amp)[:, None, None, None] * blob).astype(np.float32)
    return x, label, amp


def test_a_cnn_learns_an_easy_pixel_task_in_a_few_steps():
    x, label, amp = _blobs(320, seed=0)
    cfg = survey_preprocess_config(("g", "r", "z"), 0.262, np.ones((320, 3)), input_size_px=32)
    tr, te = split_rows(320, 0.25, seed=0)
    torch.set_num_threads(1)
    res = train_supervised(x, {"kind": Target("class", label, ("empty", "blob")), "amp": Target("regress", amp)}, cfg,
                           train_rows=tr, test_rows=te, epochs=5, seed=0, batch_size=32, lr=3e-3,
                           backbone_kwargs=TINY_NET)
    assert res.metrics["kind"]["accuracy"] > 0.85  # 0.91 here; BatchNorm running stats lag after 35 steps
    assert res.metrics["kind"]["chance"]["accuracy"] < 0.65
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    amp_m = res.metrics["amp"]
    assert amp_m["n"] == int(np.isfinite(amp[te]).sum()) and amp_m["rmse"] < amp_m["baseline_median"]["rmse"]
    assert res.predictions["kind"].shape == (len(te),) and res.predictions["amp"].shape == (len(te),)


def test_train_supervised_on_the_tiny_survey(tiny_survey: Path):
    from survey.native import NativeSurvey

    s = NativeSurvey(tiny_survey)
    cat = s.catalog
    names = tuple(sorted(set(cat["class"].tolist())))
    labels = np.array([names.index(c) for c in cat["class"]])
    z = np.where(np.isin(cat["class"], ["star", "lens"]), np.nan, cat["z"])
    noise = np.stack([cat[f"noise_sigma_{b}"] for b in s.bands], 1)
    cfg = survey_preprocess_config(s.bands, s.pixel_scale_arcsec, noise)
    assert cfg.input_size_px == 32 and cfg.band_scale == pytest.approx(tuple(np.median(noise, 0)))
    tr, te = split_rows(len(s), 0.25, seed=0)
    images = s.images(np.arange(len(s)))
    res = train_supervised(images, {"class": Target("class", labels, names), "z": Target("photoz", z)}, cfg,
                           train_rows=tr, test_rows=te, epochs=1, max_steps=3, seed=0, batch_size=32,
                           backbone_kwargs=TINY_NET)
    assert res.history[0]["steps"] == 3
    c, zm = res.metrics["class"], res.metrics["z"]
    assert c["n"] == len(te) and 0 <= c["accuracy"] <= 1 and 0 <= c["macro_f1"] <= 1
    majority = names[np.bincount(labels[tr]).argmax()]
    assert c["chance"]["predict"] == majority
    assert c["chance"]["accuracy"] == pytest.approx(np.mean(labels[te] == names.index(majority)))
    assert zm["n"] == int(np.isfinite(z[te]).sum())
    assert zm["baseline_median_z"]["predict"] == pytest.approx(np.nanmedian(z[tr]))
    assert res.predictions["class"].shape == (len(te),) and res.predictions["z"].shape == (len(te),)
    # the model predicts in target units: the z head's outputs are de-standardised
    from encoder.preprocess import preprocess

    out = predict(res.model, preprocess(images[te[:5]], cfg))
    assert out["class"].shape == (5, len(names)) and out["z"].shape == (5, 1)
    np.testing.assert_allclose(out["z"][:, 0], res.predictions["z"][:5], rtol=1e-5)
    with pytest.raises(ValueError, match="overlap"):
        train_supervised(images, {"class": Target("class", labels, names)}, cfg, train_rows=tr, test_rows=tr[:3],
                         epochs=1)


def test_supervised_check_command_writes_results_figure_and_docs(tiny_survey: Path, tmp_path: Path):
    import json

    from typer.testing import CliRunner

    from evaluation.supervised import DOCS_BEGIN, DOCS_END
    from skysift.cli import cli

    docs = tmp_path / "survey.md"
    docs.write_text(f"# page\n{DOCS_BEGIN}\nold table\n{DOCS_END}\nafter\n")
    args = ["supervised-check", "--survey", str(tiny_survey), "--limit", "48", "--epochs", "1",
            "--out", str(tmp_path / "r.json"), "--figure", str(tmp_path / "f.png"), "--docs", str(docs)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["command"] == (f"skysift supervised-check --survey {tiny_survey} --epochs 1 --seed 0 "
                                 f"--test-fraction 0.25 --limit 48 --threads 1 --out {tmp_path / 'r.json'} "
                                 f"--figure {tmp_path / 'f.png'} --docs {docs}")  # rebuilt from the options
    assert result["survey"]["objects"] == 48
    assert (tmp_path / "f.png").stat().st_size > 1000
    text = docs.read_text()
    assert "old table" not in text and text.endswith(f"{DOCS_END}\nafter\n") and "CNN on pixels" in text
