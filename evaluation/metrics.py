"""Metric functions on plain numpy arrays: rankings, retrieval, photo-z by bin, label efficiency.

Kept free of models and files so that each can be checked on a hand-made case
(tests/evaluation/test_metrics.py). Conventions:

* A ranking is given by `scores` (N,), higher = ranked earlier. NaN scores rank last. Where
  `precision_at_k` / `recall_at_k` must cut through tied scores, ties are broken by row order
  (stable sort), so the result is deterministic; `auroc`, `average_precision` and the curves are
  scikit-learn's, which group tied scores at one threshold, so no tie-break can flatter them.
* `positive` is a boolean array (N,) of the truth.
* Photo-z (Hayat et al. 2021, DESIGN.md §4): dz = (z_pred - z) / (1 + z); sigma_MAD = 1.4826 x
  median(|dz - median(dz)|); outlier fraction eta = fraction with |dz| > 0.05; bias = median(dz).
  The one implementation is `evaluation.supervised.photoz_metrics`, re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.scores import auroc

from .supervised import OUTLIER_DZ, classification_metrics, photoz_metrics

__all__ = [
    "OUTLIER_DZ",
    "auroc",
    "average_precision",
    "classification_metrics",
    "downsample_curve",
    "mean_average_precision",
    "photoz_by_bin",
    "photoz_metrics",
    "precision_at_k",
    "precision_recall_curve",
    "ranked_average_precision",
    "reach_fraction",
    "recall_at_k",
    "roc_curve",
]


def _order(scores: np.ndarray) -> np.ndarray:
    """Row indices from highest to lowest score; NaN last; ties in row order."""
    s = np.asarray(scores, dtype=np.float64)
    return np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")


def precision_at_k(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """Fraction of positives among the k highest scores (k larger than N counts only N objects)."""
    positive = np.asarray(positive, dtype=bool)
    if k < 1 or len(positive) == 0:
        raise ValueError(f"need k >= 1 and a non-empty ranking, got k={k}, N={len(positive)}")
    top = _order(scores)[:k]
    return float(positive[top].mean())


def recall_at_k(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """Fraction of all positives found among the k highest scores; NaN when there is no positive."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    return float(positive[_order(scores)[:k]].sum() / n_pos)


def _finite(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a score, as (scores float64, positive bool): a NaN score passes no threshold."""
    s = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    keep = ~np.isnan(s)
    return s[keep], positive[keep]


def precision_recall_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, threshold) at every distinct score, from the highest score down:
    scikit-learn's `precision_recall_curve` reversed, without its closing (precision 1, recall 0)
    point, which has no threshold. ValueError when there is no positive. NaN scores pass no
    threshold but their positives count in the recall's denominator, so recall then ends below 1
    (and is 0 throughout when no positive has a score)."""
    from sklearn.metrics import precision_recall_curve as sk_curve

    n_pos = int(np.sum(positive))
    if n_pos == 0:
        raise ValueError("a precision-recall curve needs at least one positive")
    s, p = _finite(scores, positive)
    if not p.any():
        thresholds = np.unique(s)[::-1]
        return np.zeros(len(thresholds)), np.zeros(len(thresholds)), thresholds
    precision, recall, thresholds = sk_curve(p, s)
    return precision[-2::-1], recall[-2::-1] * (p.sum() / n_pos), thresholds[::-1]


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the precision-recall curve as a step sum, AP = sum_i (R_i - R_(i-1)) P_i over the
    distinct score thresholds: scikit-learn's `average_precision_score`. A perfect ranking gives 1;
    a random one gives the positive rate on average. NaN when there is no positive (scikit-learn
    warns and gives 0). Positives with a NaN score are never recalled (they add nothing, as in
    `precision_recall_curve`); 0 when no positive has a score."""
    from sklearn.metrics import average_precision_score

    n_pos = int(np.sum(positive))
    if n_pos == 0:
        return float("nan")
    s, p = _finite(scores, positive)
    if not p.any():
        return 0.0
    return float(average_precision_score(p, s)) * float(p.sum() / n_pos)


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) from (0, 0) through every distinct threshold:
    scikit-learn's `roc_curve` with every point kept. ValueError without positives or negatives.
    NaN scores pass no threshold (the curve then ends below (1, 1)), as in the other curves."""
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_curve as sk_curve

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs positives and negatives")
    s, p = _finite(scores, positive)
    if len(s) == 0:
        return np.zeros(1), np.zeros(1)
    with warnings.catch_warnings():  # a class without scored rows: its rate is 0 here, not NaN
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, _ = sk_curve(p, s, drop_intermediate=False)
    n_pos_s, n_neg_s = int(p.sum()), int((~p).sum())
    return (np.nan_to_num(fpr) * (n_neg_s / n_neg), np.nan_to_num(tpr) * (n_pos_s / n_pos))


def ranked_average_precision(relevant: np.ndarray, n_relevant: np.ndarray | int) -> np.ndarray:
    """Average precision of each query from its ranked relevance: relevant (Q, M) bool, column j =
    the (j+1)-th result; n_relevant (Q,) relevant items in the whole database (for the query,
    itself excluded). AP = sum_k P@k rel_k / n_relevant, so relevant items the M results miss
    count as found at rank infinity (precision 0). Queries with no relevant item get NaN."""
    rel = np.atleast_2d(np.asarray(relevant, dtype=bool))
    n_rel = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (rel.shape[0],))
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    ap = (prec * rel).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, ap / n_rel, np.nan)


def mean_average_precision(relevant: np.ndarray, n_relevant: np.ndarray | int) -> float:
    """Mean over queries (those with at least one relevant item) of `ranked_average_precision`."""
    ap = ranked_average_precision(relevant, n_relevant)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def photoz_by_bin(
    z_pred: np.ndarray, z_true: np.ndarray, values: np.ndarray, edges: Sequence[float]
) -> list[dict[str, Any]]:
    """`photoz_metrics` in bins of `values` (e.g. r magnitude): [lo, hi) per bin, the last bin
    closed; a bin with no object reports n = 0 and no metrics."""
    values = np.asarray(values, dtype=np.float64)
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = i == len(edges) - 2
        sel = (values >= lo) & ((values <= hi) if last else (values < hi))
        entry: dict[str, Any] = {"lo": float(lo), "hi": float(hi)}
        if sel.any():
            entry.update(photoz_metrics(np.asarray(z_pred)[sel], np.asarray(z_true)[sel]))
        else:
            entry.update({"sigma_mad": None, "outlier_fraction": None, "bias": None, "n": 0})
        out.append(entry)
    return out


def reach_fraction(
    fractions: Sequence[float], scores: Sequence[float], target: float
) -> tuple[float | None, float | None]:
    """The label fraction at which a score first reaches `target` on a label-efficiency curve.

    Returns (interpolated, first measured): the first measured fraction whose score >= target, and
    the fraction where the straight line in (log fraction, score) between it and the point before
    crosses the target (equal to the first measured one when the first point already reaches it).
    (None, None) when no measured point reaches the target.
    """
    f = np.asarray(fractions, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(f)
    f, s = f[order], s[order]
    hit = np.nonzero(s >= target)[0]
    if not len(hit):
        return None, None
    i = int(hit[0])
    if i == 0 or s[i] == s[i - 1]:
        return float(f[i]), float(f[i])
    t = (target - s[i - 1]) / (s[i] - s[i - 1])
    return float(math.exp(math.log(f[i - 1]) + t * (math.log(f[i]) - math.log(f[i - 1])))), float(f[i])


def downsample_curve(x: np.ndarray, y: np.ndarray, n: int = 200) -> dict[str, list[float]]:
    """At most n points of a curve for the JSON report (always keeps the first and last)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) > n:
        keep = np.unique(np.round(np.linspace(0, len(x) - 1, n)).astype(np.int64))
        x, y = x[keep], y[keep]
    return {"x": [round(float(v), 6) for v in x], "y": [round(float(v), 6) for v in y]}
