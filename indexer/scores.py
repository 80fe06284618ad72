"""Per-object scores: how anomalous an object is, and how lens-like.

Anomaly: mean cosine distance to the k nearest neighbours in embedding space (a kNN density
estimate: objects in sparse regions of the representation are unusual). Lens: a logistic
regression on frozen embeddings from known lenses (Stein et al. 2022), blended with the maximum
similarity to the seed lenses, which carries the ranking when only a handful are known.
"""

from __future__ import annotations

import numpy as np


def knn_anomaly(distances: np.ndarray) -> np.ndarray:
    """distances (N, k+1) from a self-inclusive kNN search, column 0 = self -> (N,) scores."""
    return distances[:, 1:].mean(axis=1).astype(np.float32)


def seed_similarity(embeddings: np.ndarray, seed_rows: np.ndarray) -> np.ndarray:
    """Max cosine similarity to any seed (N,); seeds themselves get 1."""
    seeds = embeddings[seed_rows].astype(np.float32)
    out = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), 65536):
        block = embeddings[start : start + 65536].astype(np.float32)
        out[start : start + len(block)] = (block @ seeds.T).max(axis=1)
    return out


def lens_scores(embeddings: np.ndarray, positive_rows: np.ndarray, *, negatives: int = 5000,
                seed: int = 0) -> np.ndarray:
    """Probability-like lens score (N,) from known lens rows; NaN everywhere when none are known.

    Negatives are a random sample of the rest: with lenses at ~0.1-1 % of a survey, a random
    object is a non-lens with high probability (the unlabeled-as-negative assumption).
    """
    from sklearn.linear_model import LogisticRegression

    n = len(embeddings)
    if len(positive_rows) == 0:
        return np.full(n, np.nan, dtype=np.float32)
    rng = np.random.default_rng(seed)
    pos = np.unique(positive_rows)
    candidates = np.setdiff1d(np.arange(n), pos)
    neg = rng.choice(candidates, size=min(negatives, len(candidates)), replace=False)
    x = embeddings[np.concatenate([pos, neg])].astype(np.float32)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    clf.fit(x, y)
    prob = np.empty(n, dtype=np.float32)
    for start in range(0, n, 65536):
        prob[start : start + 65536] = clf.predict_proba(embeddings[start : start + 65536].astype(np.float32))[:, 1]
    sim = seed_similarity(embeddings, pos)
    return (0.5 * prob + 0.5 * np.clip(sim, 0, 1)).astype(np.float32)
