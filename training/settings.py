"""TrainSettings: one object built by the entry point, saved into every checkpoint and the card."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoder.card import Readout

from .augment import AugmentSettings

MAX_AUTO_BATCH = 128  # per process
MAX_AUTO_QUEUE = 4096


class QueueTooLarge(ValueError):
    """--queue-size holds more keys than the survey has objects besides one global batch."""


class TrainSettings(BaseSettings):
    # SKYSIFT_TRAIN_AUGMENT__SCALE_MIN=0.8 sets one augmentation field (SKYSIFT_TRAIN_AUGMENT='{...}' all)
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_TRAIN_", extra="forbid", env_nested_delimiter="__")

    survey: Path = Path("data/sim")
    out_dir: Path = Path("runs/train")
    backbone: str = "resnet18"
    # None: the backbone's own defaults (encoder.model.BACKBONE_KWARGS: the half-width ResNet-18 for
    # resnet18, timm's for a name it does not list), filled in by the validator so that checkpoints
    # and cards record the kwargs used; {} is timm's defaults for any backbone.
    backbone_kwargs: dict[str, Any] | None = None
    small_input: bool = True
    # How the exported encoder's search vector is read out (encoder.card.Readout): "dihedral8"
    # averages over the 8 right-angle rotations and flips, exactly invariant to them, at 8x the
    # encoding cost; "aligned4" turns the stamp to its light's major axis and averages 4 views, at
    # 4x; training itself is the same (docs/training.md, "Readout").
    readout: Readout = "plain"
    # Gaussian smoothing of the cropped linear pixels, sigma in pixels (encoder.preprocess), in
    # training and in every search path alike; 0: off. Measured on the 100k simulation, training on
    # smoothed views made the network less robust to fresh noise (docs/training.md, "Readout"): the
    # shipped card sets smoothing for search only, on weights trained unsmoothed.
    smooth_px: float = Field(0.0, ge=0.0, le=8.0)
    proj_dim: int = 128
    proj_hidden: int = 512
    # K; Stein et al. used 65,536 on 1.7M galaxies. Keep it well below the number of training
    # objects: a queue holding most of the survey makes an object's own earlier keys negatives.
    # None = fit the survey (resolve_sizes): the largest multiple of the global batch <= min(4096, N/4).
    queue_size: int | None = None
    momentum: float = 0.99  # m; 0.996 in Stein et al. for long runs
    temperature: float = 0.2  # T
    optimizer: Literal["sgd"] = "sgd"
    # MoCo v2's 0.03 per 256 images. 0.24 drove the loss back up towards log K in the first epoch
    # and left the demo's kNN precision@10 at 0.50 instead of 0.70 (docs/training.md).
    lr_per_256: float = 0.03
    weight_decay: float = 1e-4
    sgd_momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    batch_size: int | None = None  # per process; None = fit the survey: min(128, 2^k <= N / 8 per process), >= 2
    epochs: int = Field(8, ge=1)
    # Stop after this many steps (tests, smoke runs, a planned interruption). The learning-rate
    # schedule still spans `epochs`, so a run stopped at N and resumed continues the same curve.
    max_steps: int | None = Field(None, ge=1)
    augment: AugmentSettings = Field(default_factory=AugmentSettings)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(2, ge=0)  # DataLoader processes reading HDF5 (unused when the survey is held in memory)
    # Hold the survey's pixels in memory when they take at most this many GB (0 = always stream from
    # HDF5): small surveys are then read once instead of once per epoch (training/data.py).
    cache_gb: float = Field(2.0, ge=0.0)
    seed: int = 0
    checkpoint_every: int = Field(200, ge=1)  # steps; a checkpoint is also written when the run ends
    resume: bool = False  # continue from out_dir/checkpoint.pt when it exists (fresh start otherwise)
    # Start both MoCo encoders from this encoder folder's weights (model.safetensors + model.json,
    # hash-checked) instead of random ones: continue a shipped encoder on more images or on your own
    # survey. Its architecture and bands must be this run's (training.loop.init_from_encoder).
    init_encoder: Path | None = None
    monitor_size: int = 2000  # labelled objects for the kNN monitor (0 = off)
    log_every: int = Field(10, ge=1)
    produced_by: str = ""  # the command line, recorded in the model card

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if self.backbone_kwargs is None:
            from encoder.model import default_backbone_kwargs  # here: timm loads only when a default is needed

            self.backbone_kwargs = default_backbone_kwargs(self.backbone)
        if self.batch_size is not None and self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (MoCo needs negatives)")
        if self.queue_size is not None and self.queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if self.queue_size is not None and self.batch_size is not None and self.queue_size % self.batch_size:
            raise ValueError(
                f"queue_size ({self.queue_size}) must be a multiple of batch_size ({self.batch_size}) times "
                "the number of processes, so the queue pointer cycles cleanly"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError("momentum must be in [0, 1)")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        return self


def resolve_sizes(s: TrainSettings, n_objects: int, world: int = 1) -> TrainSettings:
    """`s` with batch_size and queue_size fixed for a survey of `n_objects` and `world` processes.

    Left at None they fit the survey: batch = the largest power of two <= N / (8 * world), between
    2 and 128 per process; queue = the largest multiple of the global batch (batch * world) <=
    min(4096, N / 4), at least one global batch. A 6,000-object survey gets batch 128 and queue 1408;
    20,000 or more objects get 128 and 4096 (the old fixed defaults). Given values are kept, but a
    queue that is not a multiple of the global batch is refused (ValueError), and one larger than
    N minus one global batch raises QueueTooLarge: such a queue can hold keys of the objects in the
    current batch, so an object's own earlier view becomes its negative.
    """
    per_rank = n_objects // world
    batch = s.batch_size
    if batch is None:
        batch = max(2, min(MAX_AUTO_BATCH, 2 ** math.floor(math.log2(per_rank / 8)) if per_rank >= 16 else 2))
    glob = batch * world
    queue = s.queue_size
    if queue is None:
        queue = max(glob, min(MAX_AUTO_QUEUE, n_objects // 4) // glob * glob)
    elif queue % glob:
        raise ValueError(f"queue_size {queue} is not a multiple of the global batch {glob} "
                         f"({batch} per process x {world} process(es))")
    room = n_objects - glob
    if queue > room:
        why = (f"{n_objects} objects minus one global batch of {glob} leaves {room}, and a larger queue can hold "
               "keys of the current batch's own objects (from the previous epoch) as their negatives")
        if s.queue_size is None:
            raise QueueTooLarge(f"the survey is too small for MoCo: even a queue of one batch ({queue}) does not "
                                f"fit, as {why}; lower --batch-size or use a larger survey")
        fits = room // glob * glob
        hint = (f"use --queue-size {fits} or less, or leave it out (default: fits the survey)" if fits >= glob
                else "lower --batch-size as well")
        raise QueueTooLarge(f"--queue-size {queue} is larger than the survey allows: {why}; {hint}")
    return s.model_copy(update={"batch_size": batch, "queue_size": queue})
