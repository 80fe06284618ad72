"""Frozen linear probe vs fine-tuned SSL encoder vs the same architecture from scratch, at label fractions.

The question of issue #14 (and Zoobot's users): given N labels, is it better to read a linear
model off the frozen self-supervised embeddings, to fine-tune the self-supervised encoder, or to
train the same network from random weights? All three see the same nested, class-stratified
labelled subsets of the train rows (`splits.labelled_subset`), choose what they choose (probe C or
ridge alpha, fine-tuning's best epoch) on the validation rows, and are scored on the test rows.
The fine-tuned and from-scratch models run the one loop `training.finetune.fit` with the same
head, schedule, augmentation and early stopping; only the starting weights differ.

- morphology: macro-F1 on the class column (probe: `probe.fit_probe`, logistic regression);
- photo-z: sigma_MAD of (z_pred - z) / (1 + z) on galaxies with a redshift (probe: ridge
  regression on the standardised embeddings, alpha chosen by validation sigma_MAD).

Section `tasks.finetune` of report.json:

    {fractions, fit {epochs, min_steps, max_steps, freeze_epochs, patience, batch_size, lr, head},
     morphology {metric, higher_is_better, classes, n_train_labelled, n_val, n_test,
                 points [{fraction, n_labels, probe {...}, finetuned {...}, scratch {...}}]},
     photoz     {metric, higher_is_better, n_train, n_val, n_test, points [...]}}

each method's entry holding its test metrics (+ C / alpha, or steps, best_epoch and seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from encoder.card import ModelCard
from encoder.head import backbone_state
from training.finetune import FitConfig, fit, predict, working_size

from .metrics import classification_metrics, photoz_metrics
from .morphology import encode_classes
from .probe import fit_probe
from .splits import Split, labelled_subset

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)


def ridge_probe(x_tr: np.ndarray, z_tr: np.ndarray, x_val: np.ndarray, z_val: np.ndarray) -> tuple[Any, float]:
    """Ridge regression on standardised embeddings; alpha with the lowest validation sigma_MAD."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best: tuple[float, Any, float] | None = None
    for a in RIDGE_ALPHAS:
        model = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(x_tr, z_tr)
        s = photoz_metrics(model.predict(x_val), z_val)["sigma_mad"] if len(z_val) else 0.0
        if best is None or s < best[0]:
            best = (s, model, a)
    assert best is not None
    return best[1], best[2]


class Pixels:
    """The rows the comparison needs, read once, centre-cropped to the side fine-tuning rotates in."""

    def __init__(self, reader: Any, rows: np.ndarray, side: int, block: int = 2048) -> None:
        from encoder.preprocess import center_crop

        self.rows = np.unique(np.asarray(rows, dtype=np.int64))
        parts = []
        for start in range(0, len(self.rows), block):
            x = torch.from_numpy(reader.images(self.rows[start : start + block]))
            parts.append(center_crop(x, side).numpy().copy())
        self.array = np.concatenate(parts) if parts else np.zeros((0, 1, side, side), np.float32)

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Positions in `array` of survey rows (all of which were read)."""
        return np.searchsorted(self.rows, np.asarray(rows, dtype=np.int64))


def run_finetune_compare(
    reader: Any,
    embeddings: np.ndarray,
    classes: np.ndarray,
    z: np.ndarray | None,
    split: Split,
    card: ModelCard,
    encoder_state: dict[str, torch.Tensor],
    *,
    fractions: Sequence[float],
    cfg: FitConfig,
    Cs: Sequence[float],
    morphology_exclude: Sequence[str],
    photoz_exclude: Sequence[str],
    seed: int,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """reader: has images(rows) -> (n, C, H, W) flux; embeddings (N, D) unit vectors; classes (N,)
    str truth; z (N,) or None (no photo-z part). Returns the report section."""
    names, y = encode_classes(classes, morphology_exclude, "the fine-tuning comparison")
    m_train, m_val, m_test = (r[y[r] >= 0] for r in (split.train, split.val, split.test))
    tasks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {"morphology": (m_train, m_val, m_test)}
    if z is not None:
        z = np.asarray(z, dtype=np.float64)
        ok = np.isfinite(z) & ~np.isin(classes, list(photoz_exclude))
        tasks["photoz"] = tuple(r[ok[r]] for r in (split.train, split.val, split.test))  # type: ignore[assignment]
    side, _ = working_size(int(reader.images(split.test[:1]).shape[-1]), card.preprocess.input_size_px)
    need = np.concatenate([rows for t in tasks.values() for rows in t])
    px = Pixels(reader, need, side)
    x = np.asarray(embeddings, dtype=np.float32)
    strata = np.unique(classes, return_inverse=True)[1]  # photo-z subsets: class-stratified too
    init = backbone_state(encoder_state)
    out: dict[str, Any] = {
        "fractions": [float(f) for f in sorted(fractions)],
        "fit": {
            "epochs": cfg.epochs,
            "min_steps": cfg.min_steps,
            "max_steps": cfg.max_steps,
            "freeze_epochs": cfg.freeze_epochs,
            "patience": cfg.patience,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "backbone_lr_scale": cfg.backbone_lr_scale,
            "head": "linear" if cfg.head_hidden == 0 else f"mlp({cfg.head_hidden})",
            "seed": cfg.seed,
        },
    }
    for task, (train, val, test) in tasks.items():
        classification = task == "morphology"
        tcfg = replace(cfg, task="classification" if classification else "regression", regression_metric="sigma_mad")
        target = y if classification else z
        points = []
        for f in sorted(fractions):
            rows = labelled_subset(train, y if classification else strata, f, seed)
            point: dict[str, Any] = {"fraction": float(f), "n_labels": int(len(rows))}
            if classification:
                probe = fit_probe(x[rows], y[rows], x[val], y[val], Cs, seed=seed)
                m = classification_metrics(probe.model.predict(x[test]), y[test], names)
                point["probe"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "C": probe.C}
            else:
                model, alpha = ridge_probe(x[rows], z[rows], x[val], z[val])  # type: ignore[index]
                point["probe"] = {**photoz_metrics(model.predict(x[test]), z[test]), "alpha": alpha}  # type: ignore[index]
            for method, start in (("finetuned", init), ("scratch", None)):
                res = fit(
                    px.array,
                    target[px.rows],
                    px.at(rows),
                    px.at(val),
                    card,
                    tcfg,  # type: ignore[index]
                    outputs=len(names) if classification else 1,
                    init_backbone=start,
                )
                pred = predict(res.model, px.array[px.at(test)], card, tcfg.device)
                if classification:
                    m = classification_metrics(pred.argmax(axis=1), y[test], names)
                    scores = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
                else:
                    scores = photoz_metrics(pred, z[test])  # type: ignore[index]
                point[method] = {**scores, "steps": res.steps, "best_epoch": res.best_epoch, "seconds": res.seconds}
            key = "macro_f1" if classification else "sigma_mad"
            log(
                f"  {task} {f:>6.1%} ({len(rows)} labels): {key} probe {point['probe'][key]:.4f}, fine-tuned "
                f"{point['finetuned'][key]:.4f}, from scratch {point['scratch'][key]:.4f}"
            )
            points.append(point)
        section: dict[str, Any] = {
            "metric": "macro_f1" if classification else "sigma_mad",
            "higher_is_better": classification,
            "n_train": int(len(train)),
            "n_val": int(len(val)),
            "n_test": int(len(test)),
            "points": points,
        }
        if classification:
            section["classes"] = list(names)
        out[task] = section
    return out
