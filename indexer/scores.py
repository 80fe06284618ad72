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

import threading
from collections.abc import Sequence

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
    """Area under the ROC curve of `scores` (N,) for boolean labels (N,): scikit-learn's
    `roc_auc_score` (the Mann-Whitney U statistic, tied scores count half).

    Edges, where scikit-learn raises instead: NaN when there is no positive or no negative, and
    NaN when any score is NaN; +-inf scores rank first / last (they are replaced by their ranks,
    which leaves the AUROC unchanged).
    """
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if positive.all() or not positive.any() or np.isnan(scores).any():
        return float("nan")
    if not np.isfinite(scores).all():
        scores = rankdata(scores)
    return float(roc_auc_score(positive, scores))


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
    """Max cosine similarity to any seed (N,); seeds themselves get ~1 (float16 rounding)."""
    return chunked_similarity(embeddings, [np.asarray(seed_rows, dtype=np.int64)])


def chunked_similarity(embeddings: np.ndarray, chunks: list[np.ndarray]) -> np.ndarray:
    """Max cosine similarity (N,) to any row of any chunk, in one pass over the survey: per block of
    BLOCK_ROWS, one (k, D) @ (D, B) product per chunk. Each chunk's products are the ones a pass for
    that chunk alone makes (same blocks, same shapes), and a max is exact in any order, so the answer
    is bit for bit the max of the chunks' separate answers: a kept max of earlier chunks can be
    extended by the new ones with the same result as computing them all again."""
    cols = [np.asarray(embeddings[np.asarray(c, dtype=np.int64)], dtype=np.float32) for c in chunks]  # (k, D) each
    out = np.empty(len(embeddings), dtype=np.float32)
    for start in range(0, len(embeddings), BLOCK_ROWS):
        block = np.asarray(embeddings[start : start + BLOCK_ROWS], dtype=np.float32).T  # (D, B), a view if float32
        sims = [(c @ block).max(axis=0) for c in cols]  # (k, B) each: the max runs over contiguous rows
        out[start : start + block.shape[1]] = sims[0] if len(sims) == 1 else np.maximum.reduce(sims)
    return out


# Inverse regularisation of the lens classifier. 10 rather than sklearn's 1: with tens of positives
# among thousands of negatives, C=1 flattened the score; on a 3,000-object simulation with 150 lenses
# (bench/bench_vote_rounds.py, docs/discovery.md) recall@100 from 20 seeds was 0.35 vs 0.30 at C=1 and
# after three rounds of 50 votes 0.54 vs 0.45 (C=0.1: 0.25, C=100: 0.55).
LENS_C = 10.0
# Rows per block of a pass over the survey: 16384 x 256 float32 is 16 MiB, converted from the float16
# memory map block by block (one conversion of a 10^6-object survey costs ~0.7 s on one core).
BLOCK_ROWS = 16384
# threadpoolctl changes the process's BLAS thread count; one fit at a time changes it, so two fits in
# the service's thread pool cannot restore each other's setting wrongly (a process-wide lock for a
# process-wide setting, not per-version state).
ONE_BLAS_THREAD = threading.Lock()


def negative_sample(n: int, size: int, exclude: np.ndarray, seed: int) -> np.ndarray:
    """`size` rows (sorted) drawn uniformly without replacement from range(n) minus `exclude`: the
    random negatives of the lens classifier. Reads O(size) numbers, not O(n): the rows come from
    one fixed seeded draw of min(n, 2 * size) rows, so more votes take rows out of the same sample
    (the score moves only with the votes, not with a resampling) and a retrain at 10^6 objects does
    not sort the survey's row numbers (setdiff1d over arange(n) cost 0.7 s there)."""
    exclude = np.unique(np.asarray(exclude, dtype=np.int64))
    pool = np.random.default_rng(seed).choice(n, size=min(n, 2 * size), replace=False)
    keep = pool[~np.isin(pool, exclude)]
    if len(keep) < size and len(pool) < n:  # more exclusions than the pool's spare half: draw from all rows
        pool = np.random.default_rng(seed).permutation(n)
        keep = pool[~np.isin(pool, exclude)]
    return np.sort(keep[:size])


def lens_scores(embeddings: np.ndarray, positive_rows: np.ndarray, *, negatives: int = 5000,
                seed: int = 0, negative_rows: np.ndarray | None = None, negative_weight: float = 5.0,
                c: float = LENS_C) -> np.ndarray:
    """Probability-like lens score (N,) from known lens rows; NaN everywhere when none are known.

    score = 0.5 * P(lens | embedding) + 0.5 * clip(max cosine similarity to a positive, 0, 1).
    Negatives are a random sample of the rest (`negative_sample`): with lenses at ~0.1-1 % of a
    survey, a random object is a non-lens with high probability (the unlabeled-as-negative
    assumption). `negative_rows` are known non-lenses (a person said "not a lens"): always among the
    negatives, each weighing `negative_weight` random ones, since they are the look-alikes the score
    confused.

    embeddings (N, D): float16 (read and converted in blocks of BLOCK_ROWS) or float32 (used as is).
    `indexer.lens_learning.LensLearner` computes the same score with what does not change between
    votes kept per version.
    """
    if len(positive_rows) == 0:
        return np.full(len(embeddings), np.nan, dtype=np.float32)
    coef, intercept = fit_lens(embeddings, positive_rows, negatives=negatives, seed=seed,
                               negative_rows=negative_rows, negative_weight=negative_weight, c=c)
    return lens_blend(embeddings, coef, intercept, np.unique(positive_rows))[0]


def with_votes(score: np.ndarray, voted_lenses: Sequence[int] | np.ndarray,
               voted_not_lenses: Sequence[int] | np.ndarray) -> np.ndarray:
    """`score` with the votes as answers: objects voted lens score 1, those voted not lens 0 (a lens
    vote wins for an object in both, as in the fit). A person's answer outranks the model's guess: a
    ranking learned from votes lists what they confirmed first and what they rejected last, instead of
    keeping a rejected look-alike near the top because it resembles a lens (issue #15's loop: the
    candidates after three rounds are the confirmed lenses and then the best unvoted ones)."""
    out = np.array(score, dtype=np.float32, copy=True)
    out[np.asarray(voted_not_lenses, dtype=np.int64)] = 0.0
    out[np.asarray(voted_lenses, dtype=np.int64)] = 1.0
    return out


def lens_training_rows(n: int, positive_rows: np.ndarray, negative_rows: np.ndarray | None, negatives: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positives, random negatives, told negatives) of a lens fit over n objects, each sorted: the
    positives unique, the told negatives (voted not a lens) without the positives, the random ones
    (`negative_sample`) from neither."""
    pos = np.unique(np.asarray(positive_rows, dtype=np.int64))
    told = np.setdiff1d(np.unique(negative_rows) if negative_rows is not None else np.zeros(0, np.int64), pos)
    return pos, negative_sample(n, negatives, np.concatenate([pos, told]), seed), told


def fit_lens(embeddings: np.ndarray, positive_rows: np.ndarray, *, negatives: int = 5000, seed: int = 0,
             negative_rows: np.ndarray | None = None, negative_weight: float = 5.0,
             c: float = LENS_C) -> tuple[np.ndarray, float]:
    """The lens classifier of `lens_scores`: (coefficients (D,) float32, intercept). The same for the
    same arguments: it runs on one BLAS thread, so its sums do not depend on the thread count."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    pos, neg, told = lens_training_rows(len(embeddings), positive_rows, negative_rows, negatives, seed)
    x = np.asarray(embeddings[np.concatenate([pos, neg, told])], dtype=np.float32)  # (~5000, D)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(told))])
    w = np.concatenate([np.ones(len(pos) + len(neg)), np.full(len(told), negative_weight)])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    # One BLAS thread: a (5000, 256) problem gains nothing from two, and on two cores shared with
    # other work two threads made the fit 20-30x slower (1.2 s vs 0.04 s at load 3.5).
    with ONE_BLAS_THREAD, threadpool_limits(1, user_api="blas"):
        clf.fit(x, y, sample_weight=w)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def lens_blend(embeddings: np.ndarray, coef: np.ndarray, intercept: float, sim_rows: np.ndarray,
               base_similarity: np.ndarray | None = None,
               chunks: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray | None]:
    """One pass over the survey: (lens score (N,), max similarity to the rows of `chunks` (N,) or None).

    score = 0.5 * sigmoid(x . coef + intercept) + 0.5 * clip(max similarity to a positive, 0, 1), the
    positives' similarity being the max of `base_similarity` (already computed for some of them),
    the rows of `chunks` and `sim_rows`. Per block of BLOCK_ROWS: one (1 + k, D) @ (D, B) product for
    the logit (row 0) and `sim_rows`, and per chunk the product `chunked_similarity` makes, so the
    chunks' max is bit for bit what a pass of their own gives.
    """
    from scipy.special import expit

    cols = np.concatenate([coef[None, :], np.asarray(embeddings[np.asarray(sim_rows, dtype=np.int64)],
                                                     dtype=np.float32)])  # (1+k, D)
    chunk_cols = [np.asarray(embeddings[np.asarray(c, dtype=np.int64)], dtype=np.float32) for c in chunks]
    out = np.empty(len(embeddings), dtype=np.float32)
    chunk_max = np.empty(len(embeddings), dtype=np.float32) if chunks else None
    for start in range(0, len(embeddings), BLOCK_ROWS):
        block = np.asarray(embeddings[start : start + BLOCK_ROWS], dtype=np.float32).T  # (D, B), a view if float32
        stop = start + block.shape[1]
        z = cols @ block  # (1+k, B): the max over positives runs over contiguous rows
        sim = z[1:].max(axis=0) if len(z) > 1 else np.full(block.shape[1], -np.inf, np.float32)
        if chunk_max is not None:
            chunk_max[start:stop] = np.maximum.reduce([(c @ block).max(axis=0) for c in chunk_cols])
            sim = np.maximum(sim, chunk_max[start:stop])
        if base_similarity is not None:
            sim = np.maximum(sim, base_similarity[start:stop])
        out[start:stop] = 0.5 * expit(z[0] + np.float32(intercept)) + 0.5 * np.clip(sim, 0, 1)
    return out, chunk_max


def percentile(scores: np.ndarray) -> np.ndarray:
    """Each score's rank among the survey's, in [0, 1] (NaN lowest; equal scores: the lower row higher, as
    a built ranking orders them): a prior on the scale of a probability, in the built ranking's order."""
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=-np.inf)
    out = np.empty(len(s), np.float32)
    out[np.lexsort((-np.arange(len(s)), s))] = np.arange(len(s), dtype=np.float32) / max(1, len(s) - 1)
    return out


def top_rows(scores: np.ndarray, keep: np.ndarray, m: int) -> np.ndarray:
    """The first m rows of the ranking of `scores` over the rows where `keep` (bool (N,); NaN scores
    must not be kept): highest score first, ties by lower row, exactly the start of a stable argsort
    of -scores[keep]. O(N) with argpartition rather than a sort of the survey: 0.02 s vs 0.1 s at 10^6."""
    rows = np.flatnonzero(keep)
    s = scores[rows]
    if m >= len(rows):
        return rows[np.argsort(-s, kind="stable")]
    if m <= 0:
        return rows[:0]
    threshold = s[np.argpartition(-s, m - 1)[m - 1]]  # the m-th highest score
    above = rows[s > threshold]
    sel = np.concatenate([above, rows[s == threshold][: m - len(above)]])  # rows ascending: ties by row
    return sel[np.lexsort((sel, -scores[sel]))]
