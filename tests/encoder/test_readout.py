"""The dihedral8 readout: an object and its copy turned by right angles or mirrored get the same
search vector, through the one path the indexer and uploads share (embed_array); the card carries
the choice and `skysift train --readout` writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.model import Encoder, dihedral_views
from encoder.preprocess import PreprocessConfig
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
    with pytest.raises(ValueError, match="readout 'mean' is not one of plain, dihedral8"):
        Encoder("resnet18", 3, 16, 32, True, KW, "mean")  # type: ignore[arg-type]


def test_skysift_train_writes_the_readout_into_the_card(tiny_survey: Path, tmp_path: Path) -> None:
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    s = TrainSettings(survey=tiny_survey, out_dir=tmp_path, epochs=1, max_steps=1, batch_size=16, queue_size=64,
                      backbone_kwargs=KW, proj_hidden=32, proj_dim=16, augment=AugmentSettings(crop_size_px=32),
                      workers=0, monitor_size=32, device="cpu", readout="dihedral8")
    _, card = load_encoder(train(s))
    assert card.readout == "dihedral8" and card.training["settings"]["readout"] == "dihedral8"
