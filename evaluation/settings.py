"""EvaluateSettings: one object for `skysift evaluate`, recorded in the report it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Task = Literal["morphology", "photoz", "lenses", "anomalies", "retrieval", "finetune"]
ALL_TASKS: tuple[Task, ...] = ("morphology", "photoz", "lenses", "anomalies", "retrieval", "finetune")


class EvaluateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_EVAL_", extra="forbid")

    # ---- what to evaluate: a version directory, or the `current` of an artifacts root
    version: Path | None = None
    artifacts: Path | None = None
    survey: Path | None = None  # pixels; None: the survey path recorded in the version's manifest
    out_dir: Path = Path("runs/evaluate")  # report.json (+ figures/ unless `figures_dir` is given)
    figures_dir: Path | None = None
    docs: Path | None = None  # also render this markdown page (e.g. docs/science.md) from the report
    what_tried: Path | None = None  # markdown spliced into the page's "what was tried" section
    tasks: tuple[Task, ...] = ALL_TASKS
    figures: bool = True
    seed: int = 0
    device: str = "auto"  # auto: cuda when available (CNN training, copy embedding), else cpu

    # ---- splits (one for every task)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.1, ge=0, lt=1)

    # ---- morphology: probe at every fraction, the CNN at cnn_fractions (which must include 1.0)
    label_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
    cnn_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    probe_C: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strength, chosen on validation
    morphology_exclude: tuple[str, ...] = ("star", "lens")  # galaxy morphology; lenses are their own task

    # ---- supervised CNN (evaluation.supervised): the encoder's backbone unless overridden
    supervised: bool = True  # False: probes and kNN only (no CNN baseline, no comparison targets)
    cnn_epochs: int = Field(8, ge=1)
    cnn_min_steps: int = Field(300, ge=0)  # small label sets train for more epochs up to this many steps
    cnn_max_steps: int | None = Field(None, ge=1)  # hard cap per CNN (keeps the tiny test fast)
    cnn_batch_size: int = Field(128, ge=2)
    cnn_lr: float = Field(3e-3, gt=0)
    cnn_backbone_kwargs: dict[str, Any] | None = None

    # ---- finetune: frozen probe vs fine-tuned encoder vs the same architecture from scratch
    # (evaluation.finetune_compare; both networks train with training.finetune.fit)
    finetune_fractions: tuple[float, ...] = (0.01, 0.1, 0.25, 0.5, 1.0)
    finetune_epochs: int = Field(20, ge=1)  # at most; early stopping on the validation rows
    finetune_min_steps: int = Field(300, ge=0)  # small label sets: longer epochs, this many steps in all at least
    finetune_max_steps: int | None = Field(None, ge=1)  # hard cap per model (keeps the tiny test fast)
    finetune_freeze_epochs: int = Field(2, ge=0)  # head-only epochs first (LP-FT)
    finetune_patience: int = Field(4, ge=1)
    finetune_head_hidden: int = Field(0, ge=0)  # 0: linear head

    # ---- photo-z
    photoz_k: tuple[int, ...] = (5, 10, 20, 50)  # kNN k, chosen on validation by sigma_MAD
    photoz_exclude: tuple[str, ...] = ("star", "lens")
    magnitude_column: str = "mag_r"
    mag_edges: tuple[float, ...] = (10.0, 17.5, 18.5, 19.0, 19.5, 25.0)

    # ---- lenses
    lens_seeds: int = Field(20, ge=1)
    lens_negatives: int = Field(5000, ge=1)
    lens_folds: int = Field(2, ge=2)
    lens_recall_k: int = Field(100, ge=1)
    lens_ks: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000)

    # ---- anomalies
    rare_classes: tuple[str, ...] = ("lens",)
    anomaly_top_k: int = Field(100, ge=1)

    # ---- retrieval
    retrieval_k: int = Field(10, ge=1)
    retrieval_exclude: tuple[str, ...] = ("star",)
    map_queries: int = Field(2000, ge=1)  # seeded sample of queries for mAP (exact, O(queries x N))
    copy_queries: int = Field(500, ge=1)
    copy_top_k: int = Field(5, ge=1)
    copy_noise_max_factor: float = Field(1.5, ge=1.0)
    gallery_queries: int = Field(6, ge=1)
    gallery_neighbours: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _check(self) -> EvaluateSettings:
        if (self.version is None) == (self.artifacts is None):
            raise ValueError("give exactly one of version (a version directory) or artifacts (its current)")
        if self.test_fraction + self.val_fraction >= 1:
            raise ValueError("test_fraction + val_fraction must be below 1")
        for name in ("label_fractions", "cnn_fractions", "finetune_fractions"):
            if not all(0 < f <= 1 for f in getattr(self, name)) or not getattr(self, name):
                raise ValueError(f"{name} must be non-empty fractions in (0, 1]")
        if 1.0 not in self.cnn_fractions:
            raise ValueError("cnn_fractions must include 1.0: the supervised score the probe is measured against")
        if list(self.mag_edges) != sorted(set(self.mag_edges)) or len(self.mag_edges) < 2:
            raise ValueError("mag_edges must be at least two increasing values")
        if not self.tasks:
            raise ValueError("tasks is empty")
        return self
