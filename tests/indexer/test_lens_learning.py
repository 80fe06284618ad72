"""The lens score retrained from votes (indexer.lens_learning, the fast path of
/rankings/lenses?learn=true): the same score as before it was made fast, the same answer whatever was
kept between votes, and the pieces it is made of (negative sample, top of the ranking)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.lens_learning import SIM_CHUNK, LensLearner
from indexer.scores import auroc, lens_scores, negative_sample, seed_similarity, top_rows, with_votes


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def survey() -> tuple[np.ndarray, np.ndarray]:
    """1,500 galaxies in 8 broad clusters and 60 lenses in a loose cluster of their own that overlaps
    them (32-d): 40 votes on the top candidates find 28 lenses and 12 look-alikes."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 32))
    gal = centres[rng.integers(0, 8, 1500)] + 0.9 * rng.normal(size=(1500, 32))
    lenses = rng.normal(size=32) + 1.4 * rng.normal(size=(60, 32))
    return unit(np.concatenate([gal, lenses])), np.r_[np.zeros(1500, bool), np.ones(60, bool)]


def reference_lens_scores(x: np.ndarray, positive_rows: np.ndarray, negative_rows: np.ndarray,
                          seed: int = 0) -> np.ndarray:
    """The lens score as computed before the retrain was made fast (commit 3d0ad00): every candidate
    sorted for the negative sample, sklearn's predict_proba, a separate similarity pass."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    pos = np.unique(positive_rows)
    told = np.setdiff1d(np.unique(negative_rows), pos)
    candidates = np.setdiff1d(np.arange(len(x)), np.concatenate([pos, told]))
    neg = rng.choice(candidates, size=min(5000, len(candidates)), replace=False)
    xt = x[np.concatenate([pos, neg, told])]
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(told))])
    w = np.concatenate([np.ones(len(pos) + len(neg)), np.full(len(told), 5.0)])
    clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(xt, y, sample_weight=w)
    sim = (x @ x[pos].T).max(axis=1)
    return (0.5 * clf.predict_proba(x)[:, 1] + 0.5 * np.clip(sim, 0, 1)).astype(np.float32)


def votes_on(x: np.ndarray, truth: np.ndarray, seeds: np.ndarray, n_votes: int) -> tuple[list[int], list[int]]:
    """The simulated astronomer of bench_vote_rounds: votes on the best unvoted candidates of the score
    learned from the seeds."""
    score = lens_scores(x, seeds)
    score[seeds] = -np.inf
    top = np.argsort(-score, kind="stable")[:n_votes]
    return [int(r) for r in top if truth[r]], [int(r) for r in top if not truth[r]]


def test_the_learned_score_ranks_as_well_as_the_one_it_replaced(survey) -> None:
    x, truth = survey
    seeds = np.nonzero(truth)[0][:8]
    pos, neg = votes_on(x, truth, seeds, 40)
    assert len(pos) >= 20 and len(neg) >= 10
    fast = LensLearner(x, seeds).scores(pos, neg)
    slow = reference_lens_scores(x, np.concatenate([seeds, pos]), np.array(neg))
    new = np.ones(len(x), bool)
    new[np.concatenate([seeds, pos, neg])] = False  # the lenses still to find
    for score in (fast, slow):
        assert np.isfinite(score).all() and score.dtype == np.float32
    assert auroc(fast[new], truth[new]) >= auroc(slow[new], truth[new]) - 1e-4 > 0.98
    k = int(truth[new].sum())
    hits = [truth[new][np.argsort(-s[new], kind="stable")[:k]].sum() for s in (fast, slow)]
    assert hits[0] >= hits[1] >= k - 6, hits  # precision at the number of lenses left: no worse
    # the same score: 1,560 objects are fewer than the 5,000 negatives, so both sample every unlabelled
    # one, and what is left is the fit's and the products' float rounding
    assert np.abs(fast - slow)[new].max() < 1e-4
    # the votes are answers: what was voted lens comes first, what was voted not a lens last
    assert (fast[pos] == 1.0).all() and (fast[neg] == 0.0).all()
    assert fast[new].max() < 1.0 and fast[new].min() > 0.0


def test_a_learner_gives_lens_scores_answer(survey) -> None:
    x, truth = survey
    seeds = np.nonzero(truth)[0][:5]
    pos, neg = list(np.nonzero(truth)[0][5:45]), list(np.nonzero(~truth)[0][:30])
    fast = LensLearner(x, seeds).scores(pos, neg)
    plain = lens_scores(x, np.concatenate([seeds, pos]), negative_rows=np.array(neg))
    np.testing.assert_allclose(fast, with_votes(plain, pos, neg), rtol=0, atol=1e-6)
    # a known lens voted not a lens stays what the fit makes it (a positive), not 0
    again = LensLearner(x, seeds).scores(pos, [*neg, int(seeds[0])])
    assert again[seeds[0]] > 0.5 and (again[neg] == 0.0).all()
    assert np.isnan(LensLearner(x, np.zeros(0, np.int64)).scores([], neg)).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_kept_pieces_never_change_the_answer(survey, dtype) -> None:
    """Votes arrive one at a time, across several completed chunks, with a vote deleted and a lens
    re-voted: after each, the learner that kept its chunks answers bit for bit what a new learner
    (nothing kept: a ranking rebuilt from its version and votes) answers."""
    x, truth = survey
    x = x.astype(dtype)
    seeds = np.nonzero(truth)[0][:4]
    lens_rows = [int(r) for r in np.nonzero(truth)[0][4:]]
    kept = LensLearner(x, seeds, keep_prefixes=2)
    pos: list[int] = []
    neg = [int(r) for r in np.nonzero(~truth)[0][:10]]
    checks = 0
    for i, row in enumerate(lens_rows[: 2 * SIM_CHUNK + 3]):
        pos.append(row)
        if i == SIM_CHUNK + 4:
            del pos[3]  # a deleted vote: the chunks after it shift
        if i == SIM_CHUNK + 6:
            pos.append(int(seeds[0]))  # a known lens voted lens again: no new positive
        answer = kept.scores(pos, neg)
        if i % 5 == 0 or len(pos) % SIM_CHUNK == 0:
            assert np.array_equal(answer, LensLearner(x, seeds).scores(pos, neg)), f"after {len(pos)} lens votes"
            checks += 1
    assert checks >= 8 and len(kept._prefixes) == 2


def test_negative_sample_is_uniform_fixed_and_leaves_out_the_labelled() -> None:
    n, size = 200_000, 5000
    exclude = np.arange(0, 4000, 2)
    a = negative_sample(n, size, exclude, seed=7)
    assert len(a) == size == len(np.unique(a)) and not np.isin(a, exclude).any()
    assert np.array_equal(a, np.sort(a)) and np.array_equal(a, negative_sample(n, size, exclude, seed=7))
    # more labelled objects take rows out of the same sample: most of it stays
    b = negative_sample(n, size, np.concatenate([exclude, a[:100]]), seed=7)
    assert not np.isin(a[:100], b).any() and np.isin(b, a).mean() > 0.97
    assert abs(np.mean(a) / n - 0.5) < 0.02  # spread over the survey, not its start
    # a survey smaller than the sample: every unlabelled row
    assert np.array_equal(negative_sample(300, size, np.array([5, 9]), seed=0), np.setdiff1d(np.arange(300), [5, 9]))
    # more exclusions than the pool's spare half: still `size` rows, none excluded
    c = negative_sample(12_000, 5000, np.arange(0, 12_000, 2), seed=1)
    assert len(c) == 5000 and (c % 2 == 1).all()


def test_top_rows_is_the_start_of_a_stable_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, 5000).astype(np.float32) / 7  # many ties
    scores[rng.integers(0, 5000, 100)] = np.nan
    keep = np.isfinite(scores) & (rng.random(5000) > 0.2)
    full = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]
    for m in (0, 1, 37, 500, int(keep.sum()) - 1, int(keep.sum()), 10_000):
        assert np.array_equal(top_rows(scores, keep, m), full[:m]), m


def test_seed_similarity_is_the_max_over_the_seeds(survey) -> None:
    x, _ = survey
    seeds = np.array([3, 700, 1501])
    np.testing.assert_allclose(seed_similarity(x, seeds), (x @ x[seeds].T).max(axis=1), atol=1e-6)
    assert np.allclose(seed_similarity(x.astype(np.float16), seeds)[seeds], 1, atol=2e-3)
