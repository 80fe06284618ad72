"""Anomaly detection: does the version's anomaly score (the one the explorer ranks by) put the
simulation's unusual objects first?

Two kinds of truth, each scored against the ordinary objects (neither kind), so that one kind of
unusual object ranking high does not count against the other:
* injected instrumental artifacts (`artifact_kind` != ""): satellite trails, cosmic rays, bad
  columns, saturation bleeds, ghosts;
* rare classes (`rare_classes`, default only "lens": 0.4 % of the bench survey, while the rarest
  galaxy type, merger, is ~7 %, as common as stars). Mergers are reported per class beside them.
"combined" ranks the whole survey with both kinds as positives: the headline (target AUROC >= 0.95).

Metrics: AUROC (probability that a random positive outscores a random ordinary object) and
precision@k of the top of the ranking, what a person paging through the list sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .metrics import auroc, downsample_curve, precision_at_k, roc_curve


def _scored(score: np.ndarray, positive: np.ndarray, keep: np.ndarray, top_k: int) -> dict[str, Any]:
    s, p = score[keep], positive[keep]
    if not p.any() or p.all():
        return {
            "auroc": None,
            f"precision_at_{top_k}": None,
            "n_positive": int(p.sum()),
            "n_negative": int((~p).sum()),
            "positive_rate": float(p.mean()) if len(p) else None,
        }
    fpr, tpr = roc_curve(s, p)
    curve = downsample_curve(fpr, tpr)
    return {
        "auroc": auroc(s, p),
        f"precision_at_{top_k}": precision_at_k(s, p, top_k),
        "n_positive": int(p.sum()),
        "n_negative": int((~p).sum()),
        "positive_rate": float(p.mean()),
        "roc_curve": {"fpr": curve["x"], "tpr": curve["y"]},
    }


def run_anomalies(
    score: np.ndarray,
    classes: np.ndarray,
    artifact_kind: np.ndarray,
    *,
    rare_classes: Sequence[str],
    top_k: int,
    description: str = "",
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """score (N,) higher = more anomalous (NaN ranks last); classes, artifact_kind (N,) str truth."""
    score = np.asarray(score, dtype=np.float64)
    classes = np.asarray(classes).astype(str)
    kind = np.asarray(artifact_kind).astype(str)
    artifact = kind != ""
    rare = np.isin(classes, list(rare_classes))
    ordinary = ~artifact & ~rare
    everyone = np.ones(len(score), dtype=bool)
    sets = {
        "artifacts": _scored(score, artifact, artifact | ordinary, top_k),
        "rare_classes": _scored(score, rare, rare | ordinary, top_k),
        "combined": _scored(score, artifact | rare, everyone, top_k),
    }
    per_kind = {
        k: _scored(score, kind == k, (kind == k) | ordinary, top_k) for k in sorted(set(kind[artifact].tolist()))
    }
    per_class = {
        c: _scored(score, (classes == c) & ~artifact, ((classes == c) & ~artifact) | ordinary, top_k)
        for c in sorted(set(classes.tolist()))
    }
    for name, m in sets.items():
        if m["auroc"] is not None:
            log(
                f"  {name:<13} AUROC {m['auroc']:.3f} precision@{top_k} {m[f'precision_at_{top_k}']:.3f} "
                f"({m['n_positive']} positives)"
            )
    for d in (*per_kind.values(), *per_class.values()):
        d.pop("roc_curve", None)  # the figure shows the three sets; the JSON keeps the numbers per kind
    return {
        "score": description,
        "rare_classes": list(rare_classes),
        "top_k": top_k,
        "headline_set": "combined",
        "sets": sets,
        "per_artifact_kind": per_kind,
        "per_class": per_class,
    }
