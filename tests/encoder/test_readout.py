"""The readouts: with dihedral8 an object and its copy turned by right angles or mirrored get the
same search vector, with aligned4 (the stamp turned to its light's major axis first) nearly the
same at any angle; both through the one path the indexer and uploads share (embed_array); the card
carries the choice and `skysift train --readout` writes it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.errors import IncompatibleInput
from encoder.model import Encoder, dihedral_views
from encoder.preprocess import PreprocessConfig, preprocess
from encoder.weights import build_encoder, load_encoder, save_encoder

KW = {"channels": [8, 16, 32, 64], "stem_width": 8}


def _card(readout: str) -> ModelCard:
    pre = PreprocessConfig(bands=("g", "r", "z"), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(0.01,) * 3)
    return ModelCard(backbone="resnet18", backbone_kwargs=KW, embedding_dim=64, projection_dim=16,
                     projection_hidden=32, preprocess=pre, readout=readout, produced_by="test")


def _copies(x: np.ndarray) -> list[np.ndarray]:
    return [v.numpy() for v in dihedral_views(torch.from_numpy(x))]


def test_dihedral_views_are_the_eight_distinct_symmetries() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = dihedral_views(x)
    assert len(views) == 8 and all(v.shape == x.shape for v in views)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    torch.testing.assert_close(views[0], x)


def test_dihedral8_embeds_every_turned_or_mirrored_copy_alike_and_plain_does_not() -> None:
    torch.manual_seed(0)
    images = np.random.default_rng(0).normal(0, 0.02, (6, 3, 48, 48)).astype(np.float32)
    images[:, :, 20:26, 14:34] += 0.5  # an elongated, off-axis object: its copies differ as pixels
    for readout, invariant in (("dihedral8", True), ("plain", False)):
        card = _card(readout)
        enc = build_encoder(card).eval()
        assert enc.readout == readout
        base = embed_array(enc, card, images)
        np.testing.assert_allclose(np.linalg.norm(base, axis=1), 1.0, atol=1e-5)
        worst = max(float(np.abs(embed_array(enc, card, c) - base).max()) for c in _copies(images)[1:])
        if invariant:
            assert worst < 1e-4
        else:
            assert worst > 1e-3  # a random network is far from invariant: the readout is what makes it so


def test_the_card_carries_the_readout_and_older_cards_read_as_plain(tmp_path: Path) -> None:
    card = _card("dihedral8")
    save_encoder(build_encoder(card), card, tmp_path)
    enc, loaded = load_encoder(tmp_path)
    assert loaded.readout == "dihedral8" and enc.readout == "dihedral8"
    raw = card.model_dump(mode="json")
    del raw["readout"]
    assert ModelCard.model_validate(raw).readout == "plain"
    with pytest.raises(ValueError, match="readout 'mean' is not one of plain, dihedral8, aligned4"):
        Encoder("resnet18", 3, 16, 32, True, KW, "mean")  # type: ignore[arg-type]


def test_skysift_train_writes_the_readout_into_the_card(tiny_survey: Path, tmp_path: Path) -> None:
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    s = TrainSettings(survey=tiny_survey, out_dir=tmp_path, epochs=1, max_steps=1, batch_size=16, queue_size=64,
                      backbone_kwargs=KW, proj_hidden=32, proj_dim=16, augment=AugmentSettings(crop_size_px=32),
                      workers=0, monitor_size=32, device="cpu", readout="aligned4", smooth_px=1.0)
    _, card = load_encoder(train(s))
    assert card.readout == "aligned4" and card.training["settings"]["readout"] == "aligned4"
    assert card.preprocess.align and card.preprocess.smooth_px == 1.0  # trained on smoothed crops, searched alike


def _galaxy(angle_deg: float, size: int = 48, seed: int = 0) -> np.ndarray:
    """A bright elongated Gaussian (axis ratio 0.3) at position angle `angle_deg`, with a fainter
    round companion off to one side (so that mirror images and half-turns differ), plus sky noise."""
    c = np.arange(size) - (size - 1) / 2
    yy, xx = np.meshgrid(c, c, indexing="ij")
    t = np.deg2rad(angle_deg)
    u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    img = np.exp(-0.5 * ((u / 5.0) ** 2 + (v / 1.5) ** 2))
    img += 0.3 * np.exp(-0.5 * ((u - 4) ** 2 + (v - 3) ** 2) / 1.2**2)
    noise = np.random.default_rng(seed).normal(0, 0.002, (3, size, size))
    return (img[None] * np.array([0.5, 1.0, 1.5])[:, None, None] + noise).astype(np.float32)[None]


def test_align_major_axis_turns_the_light_onto_x() -> None:
    from encoder.preprocess import major_axis_angle

    pre = _card("aligned4").preprocess
    assert pre.align
    for angle in (0.0, 30.0, 77.0, 120.0, -45.0):
        x = _galaxy(angle)
        measured = math.degrees(float(major_axis_angle(preprocess(x, pre.model_copy(update={"align": False})))[0]))
        assert abs((measured - angle + 90) % 180 - 90) < 3  # the angle, up to a half-turn
        turned = preprocess(x, pre)  # the readout's path: crop, stretch, turn
        assert turned.shape == (1, 3, 32, 32)
        assert abs(math.degrees(float(major_axis_angle(turned)[0]))) < 3


def test_aligned4_embeds_copies_turned_by_any_angle_or_mirrored_nearly_alike() -> None:
    torch.manual_seed(0)
    base = _galaxy(20.0)
    copies = [_galaxy(a, seed=1) for a in (20.0 + 37.0, 20.0 + 90.0, 20.0 + 143.0)] + [base[..., ::-1].copy()]
    copies.append(_galaxy(20.0 + 61.0, size=32, seed=2))  # a copy cut to the model's input: the same
    gap = {}
    for readout in ("aligned4", "plain"):
        card = _card(readout)
        enc = build_encoder(card).eval()
        e = embed_array(enc, card, base)
        gap[readout] = max(1 - float((embed_array(enc, card, c) @ e.T)[0, 0]) for c in copies)
    # a random network is far from invariant; turning each stamp to its major axis first makes it close
    assert gap["plain"] > 5 * gap["aligned4"], gap
    assert gap["aligned4"] < 2e-3, gap


def test_the_readout_owns_the_alignment_and_masked_pixels_are_sky(tmp_path: Path) -> None:
    card = _card("aligned4")
    save_encoder(build_encoder(card), card, tmp_path)
    raw = json.loads((tmp_path / "model.json").read_text())
    assert raw["preprocess"]["align"] is True
    raw["readout"] = "plain"  # a card switched back by hand keeps no stale alignment
    assert ModelCard.model_validate(raw).preprocess.align is False
    raw["preprocess"]["align"], raw["readout"] = False, "aligned4"
    assert ModelCard.model_validate(raw).preprocess.align is True
    enc, loaded = load_encoder(tmp_path)
    x = _galaxy(50.0)
    holed = x.copy()
    holed[0, :, 3, 40] = np.nan  # a masked pixel far from the galaxy
    a, b = embed_array(enc, loaded, x), embed_array(enc, loaded, holed)
    assert np.isfinite(b).all() and 1 - float((a @ b.T)[0, 0]) < 1e-3
    with pytest.raises(IncompatibleInput, match="at least 32x32"):
        embed_array(enc, loaded, x[..., :30, :30])
