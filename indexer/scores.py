"""Per-object scores: how anomalous an object is, and how lens-like.

Anomaly: from the cosine distances to the k nearest neighbours in embedding space (kNN density
estimates: objects in sparse regions of the representation are unusual). Three variants, chosen
by `IndexSettings.anomaly_method` (docs/indexing.md compares their AUROC on simulated truth):
  "mean": mean distance to the k nearest neighbours;
  "kth":  distance to the k-th nearest neighbour (Ramaswamy et al. 2000);
  "lof":  local outlier factor (Breunig et al. 2000): the object's local reachability density
          relative to its neighbours', so a sparse object among sparse neighbours is not flagged.
Lens: a logistic
regression on frozen embeddings from known lenses (Stein et al. 2022), blended with the maximum
similarity to the seed lenses, which carries the ranking when only a handful are known.
"""

from __future__ import annotations

import numpy as np

ANOMALY_METHODS = ("mean", "kth", "lof")


def knn_anomaly(distances: np.ndarray) -> np.ndarray:
    """distances (N, k+1) from a self-inclusive kNN search, column 0 = self -> (N,) mean distance."""
    return _finite(distances[:, 1:]).mean(axis=1).astype(np.float32)


def kth_anomaly(distances: np.ndarray) -> np.ndarray:
    """(N, k+1) self-inclusive distances -> (N,) distance to the k-th neighbour."""
    return _finite(distances[:, 1:])[:, -1].astype(np.float32)


def lof_anomaly(distances: np.ndarray, ids: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """Local outlier factor from a self-inclusive kNN search: distances, ids (N, k+1) -> (N,).

    reach(i, j) = max(k-distance(j), d(i, j)); lrd(i) = 1 / mean_j reach(i, j);
    LOF(i) = mean_j lrd(j) / lrd(i) over i's k neighbours j. ~1 inside a cluster, >1 for outliers.
    Missing neighbours (id -1, fewer objects than k) are replaced by the object's farthest real one.
    Works in blocks of rows, so memory stays at a few (block, k) arrays beyond the inputs.
    """
    n = len(distances)

    def rows(start: int) -> tuple[np.ndarray, np.ndarray]:
        d = _finite(distances[start : start + block, 1:])
        nb = np.asarray(ids[start : start + block, 1:], dtype=np.int64)
        if nb.size and (nb < 0).any():
            last = np.where(nb >= 0, np.arange(nb.shape[1]), 0).max(axis=1, keepdims=True)
            nb = np.where(nb >= 0, nb, np.take_along_axis(nb, last, axis=1))
        return d, nb

    kdist = np.empty(n, np.float32)
    for start in range(0, n, block):
        kdist[start : start + block] = rows(start)[0][:, -1]
    lrd = np.empty(n, np.float32)
    for start in range(0, n, block):
        d, nb = rows(start)
        lrd[start : start + block] = 1.0 / np.maximum(np.maximum(kdist[nb], d).mean(axis=1), 1e-12)
    out = np.empty(n, np.float32)
    for start in range(0, n, block):
        _, nb = rows(start)
        out[start : start + block] = lrd[nb].mean(axis=1) / lrd[start : start + block]
    return out


def anomaly_scores(distances: np.ndarray, ids: np.ndarray, method: str = "mean") -> np.ndarray:
    """(N, k+1) self-inclusive kNN distances and ids -> (N,) float32, higher = more anomalous."""
    if method == "mean":
        return knn_anomaly(distances)
    if method == "kth":
        return kth_anomaly(distances)
    if method == "lof":
        return lof_anomaly(distances, ids)
    raise ValueError(f"anomaly method must be one of {ANOMALY_METHODS}, got {method!r}")


def _finite(d: np.ndarray) -> np.ndarray:
    """Replace inf (no such neighbour: fewer objects than k) by the row's largest finite distance."""
    d = np.asarray(d, dtype=np.float32)
    if np.isfinite(d).all():
        return d
    row_max = np.where(np.isfinite(d), d, -np.inf).max(axis=1, keepdims=True)
    return np.where(np.isfinite(d), d, np.where(np.isfinite(row_max), row_max, 0.0))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for boolean labels (Mann-Whitney U, ties count half)."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def compare_anomaly_scores(distances: np.ndarray, ids: np.ndarray, positive: np.ndarray,
                           ks: tuple[int, ...] = (5, 10, 20)) -> dict[str, float]:
    """AUROC of every method at every k, from one self-inclusive search with max(ks) + 1 columns.

    Returns {"mean@10": 0.83, ...}.
    """
    out = {}
    for k in ks:
        if k + 1 > distances.shape[1]:
            raise ValueError(f"k={k} needs {k + 1} columns of neighbours, got {distances.shape[1]}")
        for method in ANOMALY_METHODS:
            out[f"{method}@{k}"] = auroc(anomaly_scores(distances[:, : k + 1], ids[:, : k + 1], method), positive)
    return out


def seed_similarity(embeddings: np.ndarray, seed_rows: np.ndarray) -> np.ndarray:
    """Max cosine similarity to any seed (N,); seeds themselves get 1."""
    seeds = embeddings[seed_rows].astype(np.float32)
    out = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), 65536):
        block = embeddings[start : start + 65536].astype(np.float32)
        out[start : start + len(block)] = (block @ seeds.T).max(axis=1)
    return out


# Inverse regularisation of the lens classifier. 10 rather than sklearn's 1: with tens of positives
# among thousands of negatives, C=1 flattened the score; on a 3,000-object simulation with 150 lenses
# (bench/bench_vote_rounds.py, docs/discovery.md) recall@100 from 20 seeds was 0.35 vs 0.30 at C=1 and
# after three rounds of 50 votes 0.54 vs 0.45 (C=0.1: 0.25, C=100: 0.55).
LENS_C = 10.0


def lens_scores(embeddings: np.ndarray, positive_rows: np.ndarray, *, negatives: int = 5000,
                seed: int = 0, negative_rows: np.ndarray | None = None, negative_weight: float = 5.0,
                c: float = LENS_C) -> np.ndarray:
    """Probability-like lens score (N,) from known lens rows; NaN everywhere when none are known.

    Negatives are a random sample of the rest: with lenses at ~0.1-1 % of a survey, a random
    object is a non-lens with high probability (the unlabeled-as-negative assumption).
    `negative_rows` are known non-lenses (a person said "not a lens"): always among the negatives,
    each weighing `negative_weight` random ones, since they are the look-alikes the score confused.
    """
    from sklearn.linear_model import LogisticRegression

    n = len(embeddings)
    if len(positive_rows) == 0:
        return np.full(n, np.nan, dtype=np.float32)
    rng = np.random.default_rng(seed)
    pos = np.unique(positive_rows)
    told = np.setdiff1d(np.unique(negative_rows) if negative_rows is not None else np.zeros(0, np.int64), pos)
    candidates = np.setdiff1d(np.arange(n), np.concatenate([pos, told]))
    neg = rng.choice(candidates, size=min(negatives, len(candidates)), replace=False)
    x = embeddings[np.concatenate([pos, neg, told])].astype(np.float32)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(told))])
    w = np.concatenate([np.ones(len(pos) + len(neg)), np.full(len(told), negative_weight)])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    clf.fit(x, y, sample_weight=w)
    prob = np.empty(n, dtype=np.float32)
    for start in range(0, n, 65536):
        prob[start : start + 65536] = clf.predict_proba(embeddings[start : start + 65536].astype(np.float32))[:, 1]
    sim = seed_similarity(embeddings, pos)
    return (0.5 * prob + 0.5 * np.clip(sim, 0, 1)).astype(np.float32)
