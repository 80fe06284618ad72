"""FinetuneSettings: one object for `skysift finetune`, saved in the fine-tuned model's card."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FinetuneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_FINETUNE_", extra="forbid")

    survey: Path  # native shards whose catalogue holds the labels
    # The encoder to start from. Its card also fixes the architecture and preprocessing of a
    # from-scratch run, so the two differ only in the starting weights.
    encoder: Path
    from_scratch: bool = False
    label_column: str
    task: Literal["classification", "regression"] = "classification"
    regression_metric: Literal["rmse", "sigma_mad"] = "rmse"  # sigma_mad: the column is a redshift
    out_dir: Path
    head_hidden: int = Field(0, ge=0)  # 0: linear head; > 0: one hidden layer (MLP)
    epochs: int = Field(20, ge=1)
    min_steps: int = Field(0, ge=0)  # small label sets: longer epochs (rounds between validation scores)
    max_steps: int | None = Field(None, ge=1)
    freeze_epochs: int = Field(2, ge=0)  # head-only epochs first (LP-FT)
    lr: float = Field(3e-3, gt=0)  # the evaluation CNN's (EvaluateSettings.cnn_lr)
    backbone_lr_scale: float = Field(0.3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=2)
    patience: int = Field(4, ge=1)
    label_fraction: float = Field(1.0, gt=0, le=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)  # early stopping
    test_fraction: float = Field(0.2, gt=0, lt=1)  # the held-out metrics in the card
    augment: bool = True
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    produced_by: str = ""  # the command line, recorded in the card

    @model_validator(mode="after")
    def _check(self) -> FinetuneSettings:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1: nothing would be left to train on")
        if self.regression_metric == "sigma_mad" and self.task != "regression":
            raise ValueError("regression_metric sigma_mad needs task regression")
        return self
