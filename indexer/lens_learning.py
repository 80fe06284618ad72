"""The lens score retrained from votes, fast enough to run after every vote (issue #15: < 2 s at
10^6 objects on two CPU cores; bench/bench_vote_retrain.py).

A retrain is `indexer.scores.lens_scores` (a logistic regression on the embeddings, blended with the
max cosine similarity to the positives) with what does not change between votes kept per version:
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
from collections.abc import Sequence

import numpy as np

from .scores import fit_lens, lens_blend, seed_similarity, with_votes

SIM_CHUNK = 16  # voted lenses per kept similarity chunk: a retrain's pass has at most 16 columns
KEEP_PREFIXES = 4  # chunk maxima kept per version: each is one float32 per object (4 MB at 10^6)


class LensLearner:
    """Per index version: retrains the lens score from voted lenses and non-lenses.

    embeddings (N, D) float16 or float32; known_rows: the version's known lenses (the build's seeds).
    Safe to share between threads: the kept pieces are guarded by a lock and built outside it.
    """

    def __init__(self, embeddings: np.ndarray, known_rows: np.ndarray, *, seed: int = 0,
                 keep_prefixes: int = KEEP_PREFIXES) -> None:
        self.embeddings = embeddings
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

    def scores(self, voted_lenses: Sequence[int], voted_not_lenses: Sequence[int]) -> np.ndarray:
        """The lens score (N,) from the known lenses plus `voted_lenses` (in vote order) as positives
        and `voted_not_lenses` as weighted negatives, the votes themselves as answers (`with_votes`:
        voted lenses 1, voted non-lenses 0); NaN everywhere with no positive at all. One pass
        over the survey, which also computes the chunks of voted lenses completed since the last kept."""
        extra = [r for r in dict.fromkeys(int(r) for r in voted_lenses) if r not in self._known_set]
        positives = np.concatenate([self.known, np.array(extra, dtype=np.int64)])
        if not len(positives):
            return np.full(len(self.embeddings), np.nan, dtype=np.float32)
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
        return with_votes(scores, extra, np.setdiff1d(np.asarray(voted_not_lenses, dtype=np.int64), self.known))
