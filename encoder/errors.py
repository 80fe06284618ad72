"""Named errors of the encoder package."""

from __future__ import annotations


class IncompatibleInput(ValueError):
    """Pixels the model cannot take: wrong band count, too small, all NaN, wrong pixel scale."""


class WeightsError(ValueError):
    """Weights that do not match their model card (hash, shapes, missing file)."""
