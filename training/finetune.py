"""Fine-tuning: the encoder's backbone plus a small head, trained on one labelled column.

    skysift finetune --survey data/demo --encoder runs/demo/encoder --label-column class --out runs/ft_class
    skysift finetune --survey data/demo --encoder runs/demo/encoder --label-column z --task regression \\
        --regression-metric sigma_mad --out runs/ft_z --epochs 20 --label-fraction 0.1
    skysift finetune ... --from-scratch      # the same architecture and schedule from random weights

`fit` is the loop both `skysift finetune` (training/finetune_run.py) and `skysift evaluate`'s
fine-tuned-vs-from-scratch comparison (evaluation/finetune_compare.py) call, so the two measure
the same thing. What it does, and why:

- the first `freeze_epochs` train the head alone on frozen features (the backbone in eval mode,
  BatchNorm statistics untouched): a randomly initialised head's large gradients would otherwise
  wreck the pretrained features in the first steps (Kumar et al. 2022, "LP-FT"). Then everything
  trains, the backbone at `backbone_lr_scale` times the head's learning rate (AdamW);
- light augmentation, labels unchanged: a random rotation (any angle where the stamp has room
  around the crop, else right angles) and flip with `training.augment.random_affine_crop`, on
  linear flux before `encoder.preprocess`, as in pretraining;
- after every epoch the validation rows are scored (macro-F1, or RMSE / sigma_MAD); the best
  epoch's weights are kept and training stops after `patience` epochs without improvement.

Pixels are float32 (N, C, H, W) linear flux, H = W at least the card's input size.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from encoder.card import ModelCard
from encoder.head import HeadModel, HeadTask
from encoder.preprocess import center_crop, preprocess

from .augment import AugmentSettings, check_geometry, random_affine_crop

RegressionMetric = Literal["rmse", "sigma_mad"]
OUTLIER_DZ = 0.05  # photo-z outliers: |dz| > 0.05 (Hayat et al. 2021)


@dataclass(frozen=True)
class FitConfig:
    task: HeadTask
    head_hidden: int = 0  # 0: a linear head; > 0: one hidden layer of this width
    epochs: int = 10
    min_steps: int = 0  # small label sets train for longer epochs, to at least this many steps in all
    max_steps: int | None = None
    freeze_epochs: int = 1
    lr: float = 1e-3  # the head's; the backbone's is lr * backbone_lr_scale
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    batch_size: int = 64
    patience: int = 3  # epochs without a better validation score before stopping
    regression_metric: RegressionMetric = "rmse"
    augment: bool = True
    seed: int = 0
    device: str = "cpu"


@dataclass
class FitResult:
    model: HeadModel
    best_epoch: int  # -1: the untrained head scored best (nothing learnt)
    metrics: dict[str, Any]  # {"initial", "frozen" (after the head-only epochs), "best"}: validation metrics
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


# -------------------------------------------------------------------------------------------- metrics


def regression_metrics(pred: np.ndarray, true: np.ndarray, redshift: bool) -> dict[str, float]:
    """RMSE and MAE; with redshift=True also sigma_MAD, outlier fraction and bias of
    dz = (pred - z) / (1 + z) (Hayat et al. 2021)."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    err = pred - true
    out = {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))), "n": int(true.size)}
    if redshift:
        dz = err / (1.0 + true)
        med = float(np.median(dz))
        out.update(
            sigma_mad=float(1.4826 * np.median(np.abs(dz - med))),
            outlier_fraction=float(np.mean(np.abs(dz) > OUTLIER_DZ)),
            bias=med,
        )
    return out


def class_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes present in either array."""
    from sklearn.metrics import f1_score

    present = np.unique(np.concatenate([true, pred]))
    return {
        "accuracy": float(np.mean(pred == true)),
        "macro_f1": float(f1_score(true, pred, labels=present, average="macro", zero_division=0)),
        "n": int(true.size),
    }


def headline(cfg: FitConfig) -> tuple[str, bool]:
    """(metric name, higher is better) that early stopping and the comparison read."""
    if cfg.task == "classification":
        return "macro_f1", True
    return cfg.regression_metric, False


def score(model: HeadModel, pixels: np.ndarray, y: np.ndarray, card: ModelCard, cfg: FitConfig) -> dict[str, float]:
    """Metrics of the model on (pixels, y): classes as int indices, or values in target units."""
    p = predict(model, pixels, card, cfg.device)
    if cfg.task == "classification":
        return class_metrics(p.argmax(axis=1), np.asarray(y))
    return regression_metrics(p, np.asarray(y), cfg.regression_metric == "sigma_mad")


@torch.no_grad()
def predict(
    model: HeadModel, pixels: np.ndarray, card: ModelCard, device: str = "cpu", batch_size: int = 256
) -> np.ndarray:
    """(N, C, H, W) flux -> class probabilities (N, K) or values (N,), centre crop as at search time."""
    model.eval()
    parts = []
    for i in range(0, len(pixels), batch_size):
        x = preprocess(pixels[i : i + batch_size], card.preprocess).to(device)
        parts.append(model.predict(x).cpu().numpy())
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, model.outputs) if model.task == "classification" else (0,), np.float32)


# ---------------------------------------------------------------------------------------- augmentation


def working_size(stamp_px: int, input_px: int) -> tuple[int, bool]:
    """(side of the centred square kept in memory, any-angle rotation possible).

    A crop of `input_px` rotated by 45 degrees reaches (input - 1) / 2 * sqrt(2) px from the centre
    (augment.check_geometry), so any angle needs a square of about 1.41 x input; the square keeps
    input's parity, so the unrotated crop samples pixel centres and equals the centre crop used at
    prediction. A stamp without that room gets right-angle rotations only (no interpolation)."""
    need = math.ceil((input_px - 1) * math.sqrt(2.0) + 1 - 1e-9)
    side = input_px + 2 * math.ceil((need - input_px) / 2)
    if side <= stamp_px:
        return side, True
    return input_px, False


def rotate_flip(x: torch.Tensor, crop_px: int, any_angle: bool, g: torch.Generator) -> torch.Tensor:
    """A random rotation and flip per sample (N, C, H, W) -> (N, C, crop, crop)."""
    n = x.shape[0]
    u = torch.rand(n, generator=g)
    angle = u * 360.0 if any_angle else torch.floor(u * 4.0) * 90.0
    flip = torch.rand(n, generator=g) < 0.5
    s = AugmentSettings(crop_size_px=crop_px, max_shift_px=0.0, scale_min=1.0, scale_max=1.0, rotate=any_angle)
    check_geometry(s, tuple(x.shape[-2:]))
    return random_affine_crop(
        x, angle_deg=angle, flip=flip, scale=torch.ones(n), shift_px=torch.zeros(n, 2), crop_size_px=crop_px
    )


# ------------------------------------------------------------------------------------------------ fit


def fit(
    pixels: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    card: ModelCard,
    cfg: FitConfig,
    *,
    outputs: int,
    init_backbone: dict[str, torch.Tensor] | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train backbone + head on pixels[train] (labels y[train]), choose the epoch on pixels[val].

    y: (N,) int class indices (task classification, `outputs` classes) or float targets
    (regression, outputs = 1; standardised on the train rows). init_backbone: `backbone.*`
    weights (encoder.head.backbone_state) or None for random ones (from scratch). The result is a
    function of (data, cfg) on the CPU.
    """
    train, val = np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)
    if len(train) < 2:
        raise ValueError(f"fine-tuning needs at least 2 labelled training objects, got {len(train)}")
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    s_in = card.preprocess.input_size_px
    side, any_angle = working_size(pixels.shape[-1], s_in)
    x_train = center_crop(torch.from_numpy(np.nan_to_num(np.asarray(pixels[train], dtype=np.float32))), side)
    x_val = np.asarray(pixels[val], dtype=np.float32)
    y_val = np.asarray(y)[val]

    model = HeadModel(card, cfg.task, outputs, cfg.head_hidden)
    if init_backbone is not None:
        missing, unexpected = model.load_state_dict(init_backbone, strict=False)
        if unexpected or any(k.startswith("backbone.") for k in missing):
            raise ValueError(
                f"the encoder's backbone weights do not fit the card's architecture "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    if cfg.task == "classification":
        y_train = torch.as_tensor(np.asarray(y)[train].astype(np.int64))
    else:
        v = np.asarray(y, dtype=np.float64)[train]
        mean, std = float(v.mean()), float(v.std() or 1.0)
        model.target_mean.fill_(mean)
        model.target_std.fill_(std)
        y_train = torch.as_tensor((v - mean) / std, dtype=torch.float32)
    model.to(device)

    name, higher = headline(cfg)
    better = (lambda a, b: a > b) if higher else (lambda a, b: a < b)
    initial = score(model, x_val, y_val, card, cfg) if len(val) else {}
    best, best_epoch, best_state = initial.get(name), -1, copy.deepcopy(model.state_dict())
    metrics: dict[str, Any] = {"initial": initial}
    opt = torch.optim.AdamW(
        [
            {"params": model.head.parameters(), "lr": cfg.lr},
            {"params": model.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale},
        ],
        weight_decay=cfg.weight_decay,
    )

    batch = min(cfg.batch_size, len(train))
    steps_per_pass = max(1, len(train) // batch)  # drop the ragged last batch (BatchNorm)
    # An "epoch" is a round between two validation scores: one pass over the labelled objects, or
    # more for small label sets so that `epochs` rounds make at least `min_steps` steps. (A round per
    # pass would score the whole validation set after every step of a 1 %-label run.)
    steps_per_round = max(steps_per_pass, math.ceil(cfg.min_steps / cfg.epochs))
    # A random backbone has no features worth protecting: from scratch, everything trains from step 0.
    freeze_epochs = cfg.freeze_epochs if init_backbone is not None else 0

    def batches() -> Any:
        while True:  # a fresh seeded shuffle for every pass
            perm = torch.randperm(len(train), generator=g)
            for b in range(steps_per_pass):
                yield perm[b * batch : (b + 1) * batch]

    stream = batches()
    history: list[dict[str, Any]] = []
    step, stale = 0, 0
    for epoch in range(cfg.epochs):
        frozen = epoch < freeze_epochs
        if epoch == freeze_epochs:
            stale = 0  # patience counts from the first epoch that trains the backbone
        model.train()
        model.backbone.train(not frozen)
        model.backbone.requires_grad_(not frozen)
        losses = []
        for _ in range(steps_per_round):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            idx = next(stream)
            x = x_train[idx].to(device)  # augment on the device: one transfer of the stamps, none of views
            x = rotate_flip(x, s_in, any_angle, g) if cfg.augment else center_crop(x, s_in)
            x = preprocess(x, card.preprocess, crop=False)
            out = model(x)
            yb = y_train[idx].to(device)
            loss = F.cross_entropy(out, yb) if cfg.task == "classification" else F.huber_loss(out[:, 0], yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        rec: dict[str, Any] = {
            "epoch": epoch,
            "steps": step,
            "frozen_backbone": frozen,
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
        }
        if len(val):
            m = score(model, x_val, y_val, card, cfg)
            rec["val"] = m
            if best is None or better(m[name], best):
                best, best_epoch, best_state, stale = m[name], epoch, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
            if frozen and epoch == freeze_epochs - 1:
                metrics["frozen"] = m
        else:
            best_epoch, best_state = epoch, copy.deepcopy(model.state_dict())
        history.append(rec)
        if on_epoch:
            on_epoch(rec)
        if (cfg.max_steps is not None and step >= cfg.max_steps) or (not frozen and stale >= cfg.patience):
            break

    model.load_state_dict(best_state)
    model.eval()
    metrics["best"] = history[best_epoch]["val"] if best_epoch >= 0 and len(val) else initial
    metrics["best_epoch"] = best_epoch
    metrics["headline"] = {"name": name, "higher_is_better": higher}
    return FitResult(
        model=model,
        best_epoch=best_epoch,
        metrics=metrics,
        history=history,
        steps=step,
        seconds=round(time.perf_counter() - t_start, 2),
    )
