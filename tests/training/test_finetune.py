"""`skysift finetune` on the tiny survey and encoder (tests/conftest.py): fine-tuning beats the head
trained on the frozen features it starts from, the card records the head, and bad columns or
fractions end in one line naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from encoder.head import load_head_model
from skysift.cli import cli
from survey.native import NativeSurvey
from training.errors import LabelError
from training.finetune_run import finetune
from training.finetune_settings import FinetuneSettings
from training.labels import heldout_split, labelled_fraction, read_labels

# Tiny but real: 12 epochs of 5 steps. One torch thread: deterministic (the sums' order depends on the
# thread count) and fastest on a busy machine; seeds 0-3 all give a margin above 0.45 here.
FAST = dict(epochs=12, batch_size=32, lr=0.01, backbone_lr_scale=0.3, device="cpu", seed=0)


@pytest.fixture(scope="module")
def runs(tiny_survey: Path, tiny_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The starting point (the head trained alone on the encoder's frozen features, every epoch) and
    the fine-tuned model (two head-only epochs, then everything), same data, seed and epochs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finetune")
    common = dict(survey=tiny_survey, encoder=tiny_encoder, label_column="class", **FAST)
    try:
        return {
            "frozen": finetune(FinetuneSettings(out_dir=out / "frozen", freeze_epochs=FAST["epochs"], **common)),
            "tuned": finetune(
                FinetuneSettings(out_dir=out / "tuned", freeze_epochs=2, produced_by="skysift finetune x", **common)
            ),
        }
    finally:
        torch.set_num_threads(before)


def _card(d: Path) -> dict:
    return json.loads((d / "model.json").read_text())


def test_finetuning_beats_the_frozen_head_on_the_held_out_test_split(runs: dict[str, Path]):
    frozen, tuned = (_card(runs[k])["head"]["metrics"]["test"] for k in ("frozen", "tuned"))
    assert frozen["n"] == tuned["n"] > 20  # the same held-out objects
    assert tuned["macro_f1"] > frozen["macro_f1"] + 0.3, (frozen, tuned)
    assert tuned["accuracy"] > frozen["accuracy"]


def test_card_records_head_metrics_command_and_the_model_loads(runs: dict[str, Path], tiny_survey: Path):
    card = _card(runs["tuned"])
    h = card["head"]
    assert h["task"] == "classification" and h["column"] == "class" and h["command"] == "skysift finetune x"
    assert set(h["classes"]) == set(np.unique(NativeSurvey(tiny_survey).catalog["class"]).tolist())
    for part in ("validation", "test", "initial_validation"):
        assert 0.0 <= h["metrics"][part]["macro_f1"] <= 1.0
    assert h["metrics"]["headline"] == {"name": "macro_f1", "higher_is_better": True}
    assert h["split"]["train"] + h["split"]["validation"] + h["split"]["test"] <= len(NativeSurvey(tiny_survey))
    assert h["initialised_from"]["weights_sha256"] and h["settings"]["freeze_epochs"] == 2
    assert [r["frozen_backbone"] for r in h["history"][:3]] == [True, True, False]
    model, loaded = load_head_model(runs["tuned"])
    assert loaded.head is not None and loaded.weights_sha256 == card["weights_sha256"]
    s = NativeSurvey(tiny_survey)
    from encoder.preprocess import preprocess

    p = model.predict(preprocess(s.images(np.arange(4)), loaded.preprocess))
    assert p.shape == (4, len(h["classes"])) and torch.allclose(p.sum(1), torch.ones(4))


def test_regression_head_on_redshift(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path):
    out = finetune(
        FinetuneSettings(
            survey=tiny_survey,
            encoder=tiny_encoder,
            label_column="z",
            task="regression",
            regression_metric="sigma_mad",
            out_dir=tmp_path / "z",
            head_hidden=16,
            epochs=2,
            batch_size=32,
            device="cpu",
        )
    )
    h = _card(out)["head"]
    assert h["target"]["column"] == "z" and h["target"]["std"] > 0 and h["hidden"] == 16
    assert h["metrics"]["test"]["sigma_mad"] >= 0 and h["metrics"]["headline"]["name"] == "sigma_mad"
    model, _ = load_head_model(out)
    assert model.task == "regression"


def test_split_is_a_hash_of_object_id_and_fractions_are_nested(tiny_survey: Path):
    s = NativeSurvey(tiny_survey)
    ids = np.asarray(s.catalog["object_id"])
    train, val, test = heldout_split(ids, 0.1, 0.2, seed=3)
    assert len(np.intersect1d(train, test)) == len(np.intersect1d(val, test)) == 0
    assert len(train) + len(val) + len(test) == len(ids)
    perm = np.random.default_rng(0).permutation(len(ids))  # another catalogue order: same objects held out
    _, _, test2 = heldout_split(ids[perm], 0.1, 0.2, seed=3)
    assert set(ids[perm][test2]) == set(ids[test])
    labels = read_labels(s.catalog, "class", "classification", "tiny")
    half = labelled_fraction(train, labels, 0.5, ids, seed=3)
    full = labelled_fraction(train, labels, 1.0, ids, seed=3)
    assert set(half) <= set(full) and len(full) == labels.labelled()[train].sum()
    with pytest.raises(LabelError, match="fewer than 2"):
        labelled_fraction(train, labels, 0.01, ids, seed=3)


def _fails(args: list[str]) -> str:
    r = CliRunner().invoke(cli, ["finetune", *args])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skysift finetune: error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--label-column", "no_such"], ["--label-column", "'no_such'", "is not a column", "class"]),
        (
            ["--label-column", "class", "--task", "regression"],
            ["--label-column", "not numeric", "--task classification"],
        ),
        (["--label-column", "class", "--label-fraction", "0.01"], ["--label-fraction", "fewer than 2"]),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(
    tiny_survey: Path, tiny_encoder: Path, tmp_path: Path, extra: list[str], expect: list[str]
):
    line = _fails(["--survey", str(tiny_survey), "--encoder", str(tiny_encoder), "--out", str(tmp_path / "o"), *extra])
    for part in expect:
        assert part in line, line
    assert not (tmp_path / "o").exists()
