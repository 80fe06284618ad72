"""The lens score retrained from votes, fast enough to run after every vote (issue #15: < 2 s at
10^6 objects on two CPU cores; bench/bench_vote_retrain.py).

A version with radial light profiles (`lens_features.npy`, `indexer.profiles`) retrains a small MLP
(`indexer.lens_mlp`) on them and on the embeddings' first PROFILE_PCS principal components: the
inputs are standardised once per version and kept, so a retrain is the fit on the ~5,000 training
rows and one pass of the MLP over the survey. The score is 0.7 x the MLP's probability + 0.3 x the
score the version was built with from its known lenses (`prior`: linear on the embeddings, blended
with the similarity to them), with the votes as answers (`with_votes`). The two see the lenses
differently; with few labels either alone has draws on which the other is better (docs/discovery.md).

A version without them (built before the profiles) keeps the linear path below. Its retrain is
`indexer.scores.lens_scores` (a logistic regression on the embeddings, blended with the max cosine
similarity to the positives) with what does not change between votes kept per version:
  - the embeddings as float32 (the caller's choice: a copy, or the float16 memory map as it is);
  - the max similarity to the version's known lenses (one pass, once);
  - the max similarity to the voted lenses in complete chunks of SIM_CHUNK, in vote order: the max
    over chunks 1..j is kept for the last few j, so a new vote costs one pass over the survey with
    the classifier's column, the incomplete chunk's (< SIM_CHUNK) and, when the vote completes a
    chunk, that chunk's: the same work at 10 votes as at 1,000.
Every piece is computed the same way whether it was kept or not (the same chunks, each by the same
product; a max does not depend on the order it is taken in), so a ranking rebuilt from its version
and votes after the kept pieces are gone is bit for bit the one served before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from .lens_mlp import fit_mlp
from .scores import (
    ONE_BLAS_THREAD,
    fit_lens,
    lens_blend,
    lens_training_rows,
    negative_sample,
    percentile,
    seed_similarity,
    with_votes,
)

SIM_CHUNK = 16  # voted lenses per kept similarity chunk: a retrain's pass has at most 16 columns
KEEP_PREFIXES = 4  # chunk maxima kept per version: each is one float32 per object (4 MB at 10^6)
PROFILE_PCS = 16  # principal components of the embeddings next to the profiles (0.89 vs 0.88 without, seed 12)
PCA_SAMPLE = 20000  # rows the standardisation and principal components are measured on (a seeded draw)
NEGATIVES = 5000  # random objects taken as non-lenses per fit
# Weight of the version's built score in the MLP path. Recall@100 after 0 / 3 rounds of 50 votes, seed
# draw 0 of the seed-14 simulation: 0.700 / 0.938 without it (below the built score's 0.725 at round
# 0), 0.738 / 0.938 at 0.3, 0.787 / 0.925 at 0.5; seed 12 at round 3 over three draws: 0.93, 0.91, 0.90.
PRIOR_WEIGHT = 0.3
TOLD_WEIGHT = 5.0  # an object voted "not a lens" weighs this many random negatives


def learner_inputs(embeddings: np.ndarray, features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, F + PROFILE_PCS) float32: the profiles robustly standardised (median, std; clipped to +-10
    so that a saturated star does not dominate) and the embeddings' first principal components scaled
    to unit variance, both measured on a seeded sample of PCA_SAMPLE rows (the whole survey below
    that). On one BLAS thread: deterministic."""
    from threadpoolctl import threadpool_limits

    n = len(embeddings)
    with threadpool_limits(1, user_api="blas"):
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, PCA_SAMPLE), replace=False))
        fs = np.asarray(features[sample], np.float32)  # the medians over 10^6 rows took 4 s, over the sample 0.1
        centre, scale = np.median(fs, axis=0), fs.std(axis=0) + np.float32(1e-6)
        f = np.empty((n, fs.shape[1]), np.float32)
        for lo in range(0, n, 65536):
            f[lo : lo + 65536] = np.clip((np.asarray(features[lo : lo + 65536], np.float32) - centre) / scale, -10, 10)
        e = np.asarray(embeddings[sample], np.float32)
        mean = e.mean(axis=0)
        vals, vecs = np.linalg.eigh(np.cov((e - mean).T))
        k = min(PROFILE_PCS, e.shape[1])
        basis = (vecs[:, ::-1][:, :k] / np.sqrt(np.maximum(vals[::-1][:k], 1e-12))).astype(np.float32)
        pcs = np.empty((n, k), np.float32)
        for lo in range(0, n, 65536):
            pcs[lo : lo + 65536] = (np.asarray(embeddings[lo : lo + 65536], np.float32) - mean) @ basis
    return np.concatenate([f, pcs], axis=1)


class LensLearner:
    """Per index version: retrains the lens score from voted lenses and non-lenses.

    embeddings (N, D) float16 or float32; known_rows: the version's known lenses (the build's seeds);
    features (N, F): the version's radial profiles, or None for the linear path; prior (N,): the score
    the version was built with (the MLP path blends it in; None or NaN: not blended); inputs: the
    MLP's inputs already computed (learners of one version share them: 350 MB at 10^6).
    Safe to share between threads: the kept pieces are guarded by a lock and built outside it.
    """

    def __init__(self, embeddings: np.ndarray, known_rows: np.ndarray, *, seed: int = 0,
                 keep_prefixes: int = KEEP_PREFIXES, features: np.ndarray | None = None,
                 prior: np.ndarray | None = None, inputs: np.ndarray | None = None) -> None:
        self.embeddings = embeddings
        self.features = features
        self.prior = prior if prior is not None and len(prior) and bool(np.isfinite(prior).all()) else None
        self._inputs = inputs  # `learner_inputs` of these embeddings and features, when the caller has them
        self.known = np.unique(np.asarray(known_rows, dtype=np.int64))
        self.seed = seed
        self.keep_prefixes = keep_prefixes
        self._known_set = set(self.known.tolist())
        self._known_similarity: np.ndarray | None = None
        self._prefixes: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def known_similarity(self) -> np.ndarray | None:
        """Max similarity to the known lenses (N,), computed on first use; None without known lenses."""
        if len(self.known) and self._known_similarity is None:
            sim = seed_similarity(self.embeddings, self.known)
            with self._lock:
                self._known_similarity = sim
        return self._known_similarity

    def inputs(self) -> np.ndarray:
        """The MLP's inputs (`learner_inputs`), computed on first use and kept."""
        assert self.features is not None
        if self._inputs is None:
            x = learner_inputs(self.embeddings, self.features, self.seed)
            with self._lock:
                self._inputs = x
        return self._inputs

    def _mlp_scores(self, positives: np.ndarray, voted_not_lenses: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        x = self.inputs()
        pos, rnd, told = lens_training_rows(len(x), positives, voted_not_lenses, NEGATIVES, self.seed)
        rows = np.concatenate([pos, rnd, told])
        y = np.concatenate([np.ones(len(pos)), np.zeros(len(rnd) + len(told))])
        # the positives weigh as much as all negatives together (tens of lenses among thousands)
        w = np.concatenate([np.full(len(pos), (len(rnd) + TOLD_WEIGHT * len(told)) / len(pos)),
                            np.ones(len(rnd)), np.full(len(told), TOLD_WEIGHT)])
        # One BLAS thread, as fit_lens: deterministic sums, and faster than two on shared cores.
        with ONE_BLAS_THREAD, threadpool_limits(1, user_api="blas"):
            p = fit_mlp(x[rows], y, w, seed=self.seed).predict(x)
        if self.prior is None:
            return p
        return (np.float32(1 - PRIOR_WEIGHT) * p + np.float32(PRIOR_WEIGHT) * self.prior).astype(np.float32)

    def graded_scores(self, rows: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """The MLP path fitted to graded votes: `rows` (voted objects) with targets `grades` in [0, 1]
        (its cross-entropy takes a 0.6 as readily as a 1), plus the random sample at 0. Weights as in
        the binary fit: the rows graded >= 0.5 weigh as much as all the others together, each other
        voted row TOLD_WEIGHT random ones. The known rows count as graded 1. No answers applied."""
        from threadpoolctl import threadpool_limits

        x = self.inputs()
        rows = np.concatenate([np.asarray(rows, np.int64), self.known])
        grades = np.concatenate([np.asarray(grades, np.float32), np.ones(len(self.known), np.float32)])
        rows, first = np.unique(rows, return_index=True)
        grades = grades[first]
        rnd = negative_sample(len(x), NEGATIVES, rows, self.seed)
        high = grades >= 0.5
        w = np.where(high, (len(rnd) + TOLD_WEIGHT * (~high).sum()) / max(1, high.sum()), TOLD_WEIGHT)
        train = np.concatenate([rows, rnd])
        y = np.concatenate([grades, np.zeros(len(rnd), np.float32)])
        weight = np.concatenate([w, np.ones(len(rnd))])
        with ONE_BLAS_THREAD, threadpool_limits(1, user_api="blas"):
            p = fit_mlp(x[train], y, weight, seed=self.seed).predict(x)
        if self.prior is None:
            return p
        return (np.float32(1 - PRIOR_WEIGHT) * p + np.float32(PRIOR_WEIGHT) * self.prior).astype(np.float32)

    def scores(self, voted_lenses: Sequence[int], voted_not_lenses: Sequence[int]) -> np.ndarray:
        """The lens score (N,) from the known lenses plus `voted_lenses` (in vote order) as positives
        and `voted_not_lenses` as weighted negatives, the votes themselves as answers (`with_votes`:
        voted lenses 1, voted non-lenses 0); NaN everywhere with no positive at all. One pass
        over the survey, which also computes the chunks of voted lenses completed since the last kept."""
        extra = [r for r in dict.fromkeys(int(r) for r in voted_lenses) if r not in self._known_set]
        positives = np.concatenate([self.known, np.array(extra, dtype=np.int64)])
        if not len(positives):
            return np.full(len(self.embeddings), np.nan, dtype=np.float32)
        told = np.setdiff1d(np.asarray(voted_not_lenses, dtype=np.int64), self.known)
        if self.features is not None:
            return with_votes(self._mlp_scores(positives, np.asarray(voted_not_lenses, np.int64)), extra, told)
        coef, intercept = fit_lens(self.embeddings, positives, negative_rows=np.asarray(voted_not_lenses, np.int64),
                                   seed=self.seed)
        full = len(extra) // SIM_CHUNK
        base, done = self.known_similarity(), 0
        with self._lock:  # the longest kept max over complete chunks
            for j in range(full, 0, -1):
                key = tuple(extra[: j * SIM_CHUNK])
                if key in self._prefixes:
                    self._prefixes.move_to_end(key)
                    base, done = self._prefixes[key], j
                    break
        chunks = [np.array(extra[j * SIM_CHUNK : (j + 1) * SIM_CHUNK]) for j in range(done, full)]
        scores, new = lens_blend(self.embeddings, coef, intercept, np.unique(extra[full * SIM_CHUNK :]), base, chunks)
        if new is not None:  # keep the max over the known lenses and every complete chunk
            with self._lock:
                self._prefixes[tuple(extra[: full * SIM_CHUNK])] = new if base is None else np.maximum(base, new)
                while len(self._prefixes) > self.keep_prefixes:
                    self._prefixes.popitem(last=False)
        # a known lens stays a positive even when voted not lens, as in the fit
        return with_votes(scores, extra, told)


def interest_learner(embeddings: np.ndarray, list_scores: np.ndarray, *, seed: int = 0,
                     features: np.ndarray | None = None, inputs: np.ndarray | None = None) -> LensLearner:
    """The learner of "interesting" for a built ranking (anomalies, combined): the lens learner's model
    with no known positives and the ranking's own score, as a percentile, blended in as the prior, so
    that with few votes the list stays what it was, re-ordered towards what was called interesting
    (Lochner & Bassett 2021's loop, on skysift's features)."""
    return LensLearner(embeddings, np.zeros(0, np.int64), seed=seed, features=features, prior=percentile(list_scores),
                       inputs=inputs)


def interest_scores(learner: LensLearner, graded: Mapping[int, float]) -> np.ndarray:
    """The list re-ordered by the votes, `graded` mapping each voted row to how interesting it was
    called, in [0, 1] (interesting 1, boring 0, a 0-5 relevance r as r / 5). Before anything is called
    interesting (>= 0.5): the list's own order (its prior) with the votes as answers. Then the MLP
    fitted to the grades (`LensLearner.graded_scores`; a version without profiles: the linear learner
    with >= 0.5 as positives), the grades as answers."""
    rows = np.array(sorted(graded), dtype=np.int64)
    y = np.array([graded[int(r)] for r in rows], dtype=np.float32)
    if not (y >= 0.5).any():
        assert learner.prior is not None
        out = np.array(learner.prior, dtype=np.float32, copy=True)
    elif learner.features is not None:
        out = learner.graded_scores(rows, y)
    else:
        out = learner.scores(rows[y >= 0.5].tolist(), rows[y < 0.5].tolist())
    out[rows] = y
    return out
