"""`--init-encoder`: a run that starts from an existing encoder's weights (continue the shipped
encoder on more images, or on your own survey), records where it started, and refuses an
encoder whose architecture or bands are not the run's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoder.card import ModelCard
from training.errors import InitEncoderMismatch
from training.loop import train
from training.settings import TrainSettings

TINY = {"channels": [8, 16, 32, 64], "stem_width": 8}


def settings(survey: Path, out: Path, **kw) -> TrainSettings:
    base = dict(survey=survey, out_dir=out, epochs=1, max_steps=2, batch_size=32, queue_size=128,
                backbone_kwargs=TINY, proj_hidden=64, proj_dim=32, workers=0, monitor_size=0, device="cpu",
                seed=5)
    return TrainSettings(**{**base, **kw})


def parameters(enc_dir: Path) -> dict[str, torch.Tensor]:
    """The learnt tensors (BatchNorm's running statistics move in any training step, even at lr 0)."""
    state = load_file(str(enc_dir / "model.safetensors"))
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_starts_from_the_given_weights_and_records_them(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path):
    # At learning rate 0 SGD leaves every parameter where it started: the run's weights are the
    # init encoder's exactly, and without --init-encoder they are a fresh random network's.
    init = parameters(tiny_encoder)
    out = train(settings(tiny_survey, tmp_path / "from", lr_per_256=0.0, init_encoder=tiny_encoder))
    got = parameters(out)
    assert got.keys() == init.keys()
    assert all(torch.equal(got[k], init[k]) for k in init)
    fresh = parameters(train(settings(tiny_survey, tmp_path / "fresh", lr_per_256=0.0)))
    assert not all(torch.equal(fresh[k], init[k]) for k in init)

    card, before = ModelCard.load(out), ModelCard.load(tiny_encoder)
    rec = card.training["init"]
    assert rec["weights_sha256"] == before.weights_sha256 and rec["encoder"] == str(tiny_encoder)
    assert rec["images_seen"] == before.metrics["images_seen_total"] == 4 * 32  # the fixture's 4 steps of 32
    assert card.metrics["images_seen"] == 2 * 32
    assert card.metrics["images_seen_total"] == 2 * 32 + 4 * 32


def test_learns_on_from_the_init(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path):
    out = train(settings(tiny_survey, tmp_path / "on", lr_per_256=0.03, init_encoder=tiny_encoder))
    init, got = parameters(tiny_encoder), parameters(out)
    moved = [k for k in init if not torch.equal(got[k], init[k])]
    assert moved, "a run at a non-zero learning rate left every weight of its init encoder in place"
    # Two small steps on: the weights moved by a few per cent of their size, not replaced.
    step = sum(float((got[k] - init[k]).norm()) for k in init)
    size = sum(float(init[k].norm()) for k in init)
    assert 0 < step < 0.05 * size, (step, size)


def test_refuses_another_architecture(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path):
    wider = {"channels": [16, 16, 32, 64], "stem_width": 8}
    with pytest.raises(InitEncoderMismatch, match=r"backbone_kwargs .*--backbone-kwargs"):
        train(settings(tiny_survey, tmp_path / "x", init_encoder=tiny_encoder, backbone_kwargs=wider))
    with pytest.raises(InitEncoderMismatch, match=r"projection_dim 32 \(run: 16\)"):
        train(settings(tiny_survey, tmp_path / "y", init_encoder=tiny_encoder, proj_dim=16))
