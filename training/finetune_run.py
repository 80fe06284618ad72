"""`skysift finetune` end to end: survey + encoder + labelled column -> OUT/model.safetensors + model.json.

    skysift finetune --survey data/demo --encoder runs/demo/encoder --label-column class --out runs/ft_class

The card is the encoder's (architecture, the survey's own preprocessing levels) with a `head`
section: task, classes or target, the held-out metrics (validation: the rows early stopping
watched; test: rows nothing was chosen on), the starting point's metrics, the command and the
resolved settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from encoder.card import WEIGHTS_NAME
from encoder.digest import sha256_file
from encoder.head import backbone_state
from encoder.weights import load_encoder
from survey.native import NativeSurvey

from .finetune import FitConfig, fit, score
from .finetune_settings import FinetuneSettings
from .labels import heldout_split, labelled_fraction, read_labels


def fit_config(s: FinetuneSettings, device: str) -> FitConfig:
    """The fit's settings: FinetuneSettings' fields of FitConfig's names, on `device` (resolved from s.device)."""
    return FitConfig(**{f.name: getattr(s, f.name) for f in fields(FitConfig) if f.name != "device"}, device=device)


def finetune(s: FinetuneSettings, log: Callable[[str], None] = lambda _: None) -> Path:
    """Fine-tune, write the model and card to s.out_dir; returns the directory."""
    device = "cuda" if (s.device == "auto" and torch.cuda.is_available()) or s.device == "cuda" else "cpu"
    survey = NativeSurvey(s.survey)
    labels = read_labels(survey.catalog, s.label_column, s.task, str(s.survey))
    encoder, card = load_encoder(s.encoder, "cpu")
    card = card.for_survey(survey.units)  # the survey's own levels (encoder.preprocess.for_survey)
    ids = np.asarray(survey.catalog["object_id"])
    train, val, test = heldout_split(ids, s.val_fraction, s.test_fraction, s.seed)
    lab = labels.labelled()
    val, test = val[lab[val]], test[lab[test]]
    train = labelled_fraction(train, labels, s.label_fraction, ids, s.seed)
    if not len(val) or not len(test):
        raise ValueError(
            f"{s.survey}: no labelled object falls in the validation or test split; "
            "raise val_fraction / test_fraction or label more objects"
        )
    log(
        f"{len(train)} labelled training objects ({s.label_fraction:g} of the labels), {len(val)} validation, "
        f"{len(test)} test; {'from scratch' if s.from_scratch else 'from ' + str(s.encoder)}"
    )

    rows = np.concatenate([train, val, test])
    order = np.argsort(rows)
    pixels = np.empty((len(rows), *survey.image_shape), dtype=np.float32)
    pixels[order] = survey.images(rows[order])
    y = labels.y[rows]
    tr, va, te = (
        np.arange(a, b)
        for a, b in ((0, len(train)), (len(train), len(train) + len(val)), (len(train) + len(val), len(rows)))
    )
    cfg = fit_config(s, device)
    init = None if s.from_scratch else backbone_state(encoder.state_dict())
    outputs = len(labels.classes) if s.task == "classification" else 1

    def show(rec: dict[str, Any]) -> None:
        v = rec.get("val", {})
        shown = ", ".join(f"{k} {v[k]:.4f}" for k in ("accuracy", "macro_f1", "rmse", "sigma_mad") if k in v)
        log(
            f"epoch {rec['epoch']:>3}{' (head only)' if rec['frozen_backbone'] else ''}: "
            f"loss {rec['train_loss']:.4f}; validation {shown}"
        )

    res = fit(pixels, y, tr, va, card, cfg, outputs=outputs, init_backbone=init, on_epoch=show)
    test_metrics = score(res.model, pixels[te], y[te], card, cfg)
    log(f"test: {test_metrics}")

    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in res.model.state_dict().items()}
    tmp = out / (WEIGHTS_NAME + ".partial")
    save_file(state, str(tmp), metadata={"backbone": card.backbone, "head": s.task})
    os.replace(tmp, out / WEIGHTS_NAME)
    head: dict[str, Any] = {
        "task": s.task,
        "column": s.label_column,
        "hidden": s.head_hidden,
        "metrics": {
            "validation": res.metrics["best"],
            "test": test_metrics,
            "initial_validation": res.metrics["initial"],
            "frozen_head_validation": res.metrics.get("frozen"),
            "headline": res.metrics["headline"],
        },
        "split": {
            "by": "blake2b hash of object_id",
            "seed": s.seed,
            "train": int(len(train)),
            "validation": int(len(val)),
            "test": int(len(test)),
        },
        "best_epoch": res.best_epoch,
        "steps": res.steps,
        "seconds": res.seconds,
        "history": res.history,
        "initialised_from": None
        if s.from_scratch
        else {"encoder": str(s.encoder), "weights_sha256": card.weights_sha256},
        "command": s.produced_by,
        "settings": s.model_dump(mode="json"),
    }
    if s.task == "classification":
        head["classes"] = list(labels.classes)
    else:
        head["target"] = {
            "column": s.label_column,
            "mean": float(res.model.target_mean),
            "std": float(res.model.target_std),
        }
    update: dict[str, Any] = (
        {"training": {"from_scratch": True, "architecture_of": str(s.encoder)}} if s.from_scratch else {}
    )
    new = card.model_copy(
        update={
            **update,
            "head": head,
            "produced_by": s.produced_by,
            "weights_sha256": sha256_file(out / WEIGHTS_NAME),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    new.save(out)
    log(f"fine-tuned model written to {out}")
    return out
