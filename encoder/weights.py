"""Save and load encoder weights with safetensors (never pickle) and check them against the card."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .card import CARD_NAME, WEIGHTS_NAME, ModelCard
from .digest import sha256_file
from .errors import WeightsError
from .model import Encoder

M = TypeVar("M", bound=nn.Module)


def build_encoder(card: ModelCard) -> Encoder:
    return Encoder(card.backbone, len(card.bands), card.projection_dim, card.projection_hidden, card.small_input,
                   card.backbone_kwargs, card.readout)


def save_encoder(encoder: Encoder, card: ModelCard, directory: Path) -> ModelCard:
    """Write model.safetensors + model.json; the card gets the weights' sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in encoder.state_dict().items()}
    tmp = directory / (WEIGHTS_NAME + ".partial")
    save_file(state, str(tmp), metadata={"backbone": card.backbone})
    os.replace(tmp, directory / WEIGHTS_NAME)
    card = card.model_copy(update={"weights_sha256": sha256_file(directory / WEIGHTS_NAME)})
    card.save(directory)
    return card


def load_checked(directory: Path, build: Callable[[ModelCard], M], what: str,
                 device: str | torch.device = "cpu") -> tuple[M, ModelCard]:
    """The model `build` makes from the directory's card, with the weights loaded after checking them
    against the card's sha256, in eval mode. `what` names the directory's kind in errors."""
    directory = Path(directory)
    wpath, cpath = directory / WEIGHTS_NAME, directory / CARD_NAME
    for p in (wpath, cpath):
        if not p.exists():
            raise WeightsError(f"{p} is missing: {what} holds {WEIGHTS_NAME} and {CARD_NAME}")
    card = ModelCard.load(directory)
    digest = sha256_file(wpath)
    if card.weights_sha256 and digest != card.weights_sha256:
        raise WeightsError(f"{wpath}: sha256 {digest[:12]}... does not match the card's {card.weights_sha256[:12]}...")
    model = build(card)
    try:
        model.load_state_dict(load_file(str(wpath)))
    except RuntimeError as e:
        raise WeightsError(f"{wpath}: weights do not fit the card's model {card.backbone}: {e}") from e
    return model.to(device).eval(), card


def load_encoder(directory: Path, device: str | torch.device = "cpu") -> tuple[Encoder, ModelCard]:
    """Load weights checked against the card's hash; the model comes back in eval mode."""
    return load_checked(directory, build_encoder, "an encoder directory", device)
