from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encoder.card import ModelCard
from encoder.errors import WeightsError
from encoder.preprocess import PreprocessConfig
from encoder.weights import build_encoder, load_encoder, save_encoder

KW = {"channels": [8, 16, 32, 64], "stem_width": 8}


def _card() -> ModelCard:
    pre = PreprocessConfig(bands=("g", "r", "z"), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(0.01,) * 3)
    return ModelCard(backbone="resnet18", backbone_kwargs=KW, embedding_dim=64, projection_dim=16,
                     projection_hidden=32, preprocess=pre, produced_by="test")


def test_round_trip_gives_identical_embeddings(tmp_path: Path) -> None:
    card = _card()
    enc = build_encoder(card).eval()
    saved = save_encoder(enc, card, tmp_path)
    assert (tmp_path / "model.safetensors").exists() and len(saved.weights_sha256) == 64
    loaded, card2 = load_encoder(tmp_path)
    assert card2.weights_sha256 == saved.weights_sha256 and card2.bands == ("g", "r", "z")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b = enc.embed(x), loaded.embed(x)
    torch.testing.assert_close(a, b)
    assert a.shape == (4, 64)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(4))


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    card = _card()
    save_encoder(build_encoder(card), card, tmp_path)
    data = bytearray((tmp_path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_encoder(tmp_path)


def test_missing_files_and_wrong_architecture(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="missing"):
        load_encoder(tmp_path)
    card = _card()
    save_encoder(build_encoder(card), card, tmp_path)
    other = card.model_copy(update={"backbone_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 16},
                                    "weights_sha256": ""})
    other.save(tmp_path)
    with pytest.raises(WeightsError, match="do not fit"):
        load_encoder(tmp_path)


def test_card_refuses_wrong_bands() -> None:
    from encoder.errors import IncompatibleInput

    card = _card()
    with pytest.raises(IncompatibleInput, match="5 band"):
        card.check_bands(None, 5)
    with pytest.raises(IncompatibleInput, match="u,g,r differ"):
        card.check_bands(("u", "g", "r"), 3)
