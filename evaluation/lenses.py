"""Strong-lens search from a handful of known lenses (Stein et al. 2022, DESIGN.md §4).

`n_seeds` true lenses, drawn with a seed, are the only labels; every other object is unlabelled.
Each ranker scores the whole survey, and the seeds are then left out of every metric (finding
the lenses you started from proves nothing). Rankers:

* classifier: logistic regression on the standardised frozen embeddings (as the morphology
  probe: unit vectors whose coordinates spread very differently), seeds as positives and random
  unlabelled objects as negatives (positive-unlabelled learning: at a lens rate below 1 % a
  random object is almost surely not a lens). Cross-fitted: the unlabelled objects are cut into
  `folds` parts and each part is scored by a model whose negatives came from the other parts, so
  no object is scored by a model that was told it is a non-lens.
* similarity_max / similarity_mean: cosine similarity to the nearest seed / to the seeds' mean
  direction; no fitting, the baseline "more like these".
* service_blend: `indexer.scores.lens_scores`, the score the service ranks by (half classifier,
  half max similarity), fitted on the same seeds; it uses its negatives in-sample, as it does in
  production.

Metrics (precision and recall at k, not accuracy, at a 0.4 % positive rate): recall@100 and the
most it could be (100 / positives when there are more than 100 positives), precision@k,
R-precision (precision at k = number of positives), AUPRC (average precision; a random ranking
scores the positive rate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from indexer.scores import lens_scores, seed_similarity

from .errors import EvaluationError
from .metrics import average_precision, downsample_curve, precision_at_k, precision_recall_curve, recall_at_k


def pick_seeds(is_lens: np.ndarray, n_seeds: int, seed: int) -> np.ndarray:
    """n_seeds rows drawn from the true lenses, sorted; a named error when there are too few (at
    least one lens must remain to be found)."""
    lenses = np.nonzero(np.asarray(is_lens, dtype=bool))[0]
    if n_seeds < 1 or len(lenses) <= n_seeds:
        raise EvaluationError(
            f"need more than n_seeds={n_seeds} lenses to evaluate a lens search, the survey has "
            f"{len(lenses)}; lower lens_seeds or simulate more lenses"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1E25]))
    return np.sort(rng.choice(lenses, size=n_seeds, replace=False))


def pu_classifier_scores(
    embeddings: np.ndarray, seeds: np.ndarray, *, negatives: int, folds: int = 2, seed: int = 0, C: float = 1.0
) -> np.ndarray:
    """Cross-fitted positive-unlabelled logistic regression: (N,) log-odds, NaN at the seeds."""
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9E6]))
    unlabelled = rng.permutation(np.setdiff1d(np.arange(n), seeds))
    parts = np.array_split(unlabelled, max(2, folds))
    out = np.full(n, np.nan, dtype=np.float64)
    for i, part in enumerate(parts):
        pool = np.concatenate([p for j, p in enumerate(parts) if j != i])
        neg = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
        clf = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
        )
        clf.fit(x[np.concatenate([seeds, neg])], np.r_[np.ones(len(seeds)), np.zeros(len(neg))])
        for start in range(0, len(part), 65536):
            rows = part[start : start + 65536]
            out[rows] = clf.decision_function(x[rows])
    return out


def mean_similarity(embeddings: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(N,) cosine similarity to the normalised mean of the seed vectors."""
    x = np.asarray(embeddings, dtype=np.float32)
    centre = x[seeds].mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    return x @ centre


def ranking_metrics(scores: np.ndarray, positive: np.ndarray, ks: Sequence[int], recall_k: int) -> dict[str, Any]:
    """Metrics of one ranking over the evaluated objects (seeds already removed)."""
    n_pos = int(np.sum(positive))
    precision, recall, _ = precision_recall_curve(scores, positive)
    return {
        f"recall_at_{recall_k}": recall_at_k(scores, positive, recall_k),
        f"recall_at_{recall_k}_ceiling": min(1.0, recall_k / n_pos),
        "precision_at_k": {str(k): precision_at_k(scores, positive, k) for k in ks if k <= len(positive)},
        "r_precision": precision_at_k(scores, positive, n_pos),
        "auprc": average_precision(scores, positive),
        "pr_curve": {
            "recall": downsample_curve(recall, precision)["x"],
            "precision": downsample_curve(recall, precision)["y"],
        },
    }


def run_lenses(
    embeddings: np.ndarray,
    is_lens: np.ndarray,
    *,
    n_seeds: int,
    negatives: int,
    folds: int,
    ks: Sequence[int],
    recall_k: int,
    seed: int,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    x = np.asarray(embeddings, dtype=np.float32)
    is_lens = np.asarray(is_lens, dtype=bool)
    seeds = pick_seeds(is_lens, n_seeds, seed)
    scored = np.ones(len(x), dtype=bool)
    scored[seeds] = False
    positive = is_lens[scored]
    rankers = {
        "classifier": pu_classifier_scores(x, seeds, negatives=negatives, folds=folds, seed=seed),
        "similarity_max": seed_similarity(x, seeds),
        "similarity_mean": mean_similarity(x, seeds),
        "service_blend": lens_scores(x, seeds, negatives=negatives, seed=seed),
    }
    out: dict[str, Any] = {
        "n_objects": int(len(x)),
        "n_lenses": int(is_lens.sum()),
        "n_seeds": int(len(seeds)),
        "n_evaluated": int(scored.sum()),
        "n_positive_evaluated": int(positive.sum()),
        "positive_rate": float(positive.mean()),
        "recall_k": recall_k,
        "headline_ranker": "classifier",
        "rankers": {},
    }
    for name, s in rankers.items():
        m = ranking_metrics(np.asarray(s, dtype=np.float64)[scored], positive, ks, recall_k)
        out["rankers"][name] = m
        log(f"  {name:<16} recall@{recall_k} {m[f'recall_at_{recall_k}']:.3f} AUPRC {m['auprc']:.3f}")
    return out
