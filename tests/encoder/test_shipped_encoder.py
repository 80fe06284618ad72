"""The encoder in models/ (issue #14): its weights match its card's sha256, the card says what it
expects and how it was made, it embeds a simulated survey's stamps, and a changed byte is refused.
The demo uses it unless told to train its own."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from encoder.card import CARD_NAME, WEIGHTS_NAME
from encoder.errors import WeightsError
from encoder.shipped import SHIPPED_DIR, shipped_encoder
from encoder.weights import load_encoder


def demo_training_images() -> int:
    """Images `skysift demo --train` shows its own encoder: epochs x whole batches of the demo preset."""
    from skysift.demo import DEMO_TRAIN_EPOCHS
    from survey.simulate.settings import SimSettings
    from training.settings import TrainSettings, resolve_sizes

    n = SimSettings(out_dir=Path("unused"), preset="demo").size
    batch = resolve_sizes(TrainSettings(survey=Path("unused"), out_dir=Path("unused")), n).batch_size
    assert batch is not None
    return DEMO_TRAIN_EPOCHS * (n // batch) * batch


def test_the_shipped_encoder_matches_its_card() -> None:
    folder = shipped_encoder()
    assert folder == SHIPPED_DIR, "models/ holds no encoder"
    card = json.loads((folder / CARD_NAME).read_text())
    digest = hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()
    assert card["weights_sha256"] == digest
    assert (folder / WEIGHTS_NAME).stat().st_size < 30e6
    assert card["preprocess"]["bands"] == ["g", "r", "z"]
    assert card["produced_by"].startswith("skysift train")
    assert card["training"]["data"]["n_objects"] >= 100_000
    assert card["metrics"]["images_seen_total"] >= 20 * demo_training_images()  # issue #14: >= 20x the demo's run
    readme = (folder / "README.md").read_text()
    assert digest in readme and card["produced_by"] in readme  # the folder says what it is and how it was made


def test_the_shipped_encoder_embeds_stamps(tiny_survey: Path) -> None:
    from encoder.embed import embed_array
    from survey.native import NativeSurvey

    model, card = load_encoder(SHIPPED_DIR)
    survey = NativeSurvey(tiny_survey)
    emb = embed_array(model, card.for_survey(survey.units), survey.read_range(0, 16))
    assert emb.shape == (16, card.embedding_dim) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert np.median(1.0 - (emb @ emb.T)[np.triu_indices(16, 1)]) > 0.05  # different stamps, different vectors


def test_a_changed_byte_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "enc"
    shutil.copytree(SHIPPED_DIR, copy)
    raw = bytearray((copy / WEIGHTS_NAME).read_bytes())
    raw[-1] ^= 0xFF
    (copy / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="does not match the card"):
        load_encoder(copy)


def test_the_demo_uses_it_unless_told_to_train(tmp_path: Path) -> None:
    from skysift.demo import pick_encoder

    assert pick_encoder(tmp_path / "runs", train_own=False) == (SHIPPED_DIR, False)
    assert pick_encoder(tmp_path / "runs", train_own=True) == (tmp_path / "runs" / "encoder", True)
