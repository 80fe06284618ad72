"""The supervised CNN baseline as the science tasks call it: the encoder's own backbone and
preprocessing (from the version's model card), trained from scratch on one task's labels by
`evaluation.supervised.train_supervised`.

A fixed number of epochs would give the 1 %-label CNN a hundredth of the optimiser steps of the
100 % one and measure under-training rather than label efficiency, so small label sets train for
more epochs until they reach `min_steps` (capped by `max_steps`, the knob that keeps tests fast).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encoder.card import ModelCard
from encoder.preprocess import center_crop

from .supervised import SupervisedResult, Target, train_supervised


@dataclass(frozen=True)
class CNNConfig:
    backbone: str
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 8
    min_steps: int = 0
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def from_card(cls, card: ModelCard, backbone_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> CNNConfig:
        """The card's backbone (same architecture as the encoder), or other kwargs when given."""
        kw = dict(card.backbone_kwargs if backbone_kwargs is None else backbone_kwargs)
        return cls(backbone=card.backbone, backbone_kwargs=kw, **kwargs)

    def epochs_for(self, n_train: int) -> int:
        steps_per_epoch = max(1, n_train // self.batch_size)
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))


class RowPixels:
    """`images[rows]` for `train_supervised` without loading the whole survey: reads only the rows
    asked for, in blocks, through a reader with an `images(rows)` method (NativeSurvey,
    IndexedSurvey), and keeps only the centre `crop_px` square that preprocessing would keep
    anyway (`encoder.preprocess.center_crop`, the same crop), so 10^5 64 px stamps take 1.2 GB
    instead of 4.9 GB."""

    def __init__(self, reader: Any, crop_px: int | None = None, block: int = 4096) -> None:
        self.reader, self.crop_px, self.block = reader, crop_px, block

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        parts = []
        for start in range(0, len(rows), self.block):
            x = self.reader.images(rows[start : start + self.block])
            parts.append(np.ascontiguousarray(center_crop(x, self.crop_px)) if self.crop_px else x)  # type: ignore[arg-type]
        return np.concatenate(parts) if parts else self.reader.images(rows)


def train_cnn(
    pixels: Any,
    targets: Mapping[str, Target],
    card: ModelCard,
    cfg: CNNConfig,
    *,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
) -> tuple[SupervisedResult, dict[str, Any]]:
    """Train on train_rows, predict test_rows; returns the result and a record of how it trained."""
    epochs = cfg.epochs_for(len(train_rows))
    res = train_supervised(
        pixels,
        targets,
        card.preprocess,
        train_rows=train_rows,
        test_rows=test_rows,
        epochs=epochs,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        backbone=cfg.backbone,
        backbone_kwargs=cfg.backbone_kwargs,
        max_steps=cfg.max_steps,
        device=cfg.device,
    )
    steps = res.history[-1]["steps"] if res.history else 0
    seconds = float(sum(h["seconds"] for h in res.history))
    return res, {
        "n_train": int(len(train_rows)),
        "epochs": len(res.history),
        "steps": int(steps),
        "train_seconds": round(seconds, 2),
    }
