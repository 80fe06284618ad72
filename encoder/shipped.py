"""The encoder that ships with skysift (models/), so that the demo and a first index of a survey like
the simulation need no training run: weights trained by `skysift train` on 100,000-object `bench` simulations
(from random weights, then continued four times with `--init-encoder`), with their card and the command
that made them (models/<name>/README.md)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_NAME = "sim-grz-moco-v5"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models" / SHIPPED_NAME


def shipped_encoder() -> Path | None:
    """The shipped encoder's folder, or None where this checkout has none (it was removed)."""
    return SHIPPED_DIR if (SHIPPED_DIR / "model.safetensors").exists() else None
