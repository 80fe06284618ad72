"""A fine-tuned model: the encoder's backbone plus a small head on one catalogue column.

`skysift finetune` (training/finetune.py) writes it as `model.safetensors` + `model.json` (an
`encoder.card.ModelCard` whose `head` section says what the head predicts); this module builds and
reads it, so whatever later serves predictions (a catalogue column of a published version) loads it
here, next to the encoder it came from, and never through `training`.

Head: a linear layer, or one hidden layer with ReLU (`hidden` > 0), on the pooled backbone
features (the representation search uses, before L2 normalisation). A regression head predicts the
standardised target; the `target_mean` / `target_std` buffers turn it back into catalogue units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .card import ModelCard
from .errors import WeightsError
from .model import create_backbone, feature_dim

HeadTask = Literal["classification", "regression"]


def make_head(features: int, outputs: int, hidden: int = 0) -> nn.Module:
    """Linear (hidden = 0) or Linear-ReLU-Linear head: (N, features) -> (N, outputs)."""
    if hidden <= 0:
        return nn.Linear(features, outputs)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))


class HeadModel(nn.Module):
    """Backbone + head. forward: (N, C, S, S) preprocessed pixels -> (N, outputs) logits, or (N, 1)
    standardised values for a regression head (`predict` returns catalogue units)."""

    def __init__(self, card: ModelCard, task: HeadTask, outputs: int, hidden: int = 0) -> None:
        super().__init__()
        self.task, self.outputs = task, outputs
        self.backbone = create_backbone(card.backbone, len(card.bands), card.small_input, **card.backbone_kwargs)
        self.head = make_head(feature_dim(self.backbone), outputs, hidden)
        self.register_buffer("target_mean", torch.zeros(()))
        self.register_buffer("target_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, K), or values in the target's units (N,)."""
        out = self(x).float()
        if self.task == "classification":
            return out.softmax(dim=1)
        return out[:, 0] * self.target_std + self.target_mean


def head_model_for(card: ModelCard) -> HeadModel:
    """An untrained HeadModel shaped as a fine-tuned card's `head` section says."""
    if card.head is None:
        raise WeightsError("the model card has no `head` section: these are encoder weights, not a fine-tuned model")
    h = card.head
    outputs = len(h["classes"]) if h["task"] == "classification" else 1
    return HeadModel(card, h["task"], outputs, int(h.get("hidden", 0)))


def load_head_model(directory: Path, device: str | torch.device = "cpu") -> tuple[HeadModel, ModelCard]:
    """A fine-tuned model checked against its card's hash, in eval mode."""
    from .weights import load_checked

    return load_checked(directory, head_model_for, "a fine-tuned model directory", device)


def backbone_state(encoder_state: dict[str, Any]) -> dict[str, Any]:
    """The `backbone.*` entries of an encoder state dict (the projection head is not fine-tuned)."""
    return {k: v for k, v in encoder_state.items() if k.startswith("backbone.")}
