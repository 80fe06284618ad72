"""Lens and anomaly scores on toy embeddings where the answer is known."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from indexer.scores import (
    anomaly_scores,
    auroc,
    compare_anomaly_scores,
    knn_anomaly,
    kth_anomaly,
    lens_scores,
    lof_anomaly,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact self-inclusive kNN: (1 - cosine) distances and ids, (N, k+1)."""
    sims, ids = faiss.knn(x, x, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    return (1.0 - sims).astype(np.float32), ids


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray]:
    """600 galaxies in 6 broad clusters plus 30 lenses in a tight cluster of their own (16-d)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    gal = centres[rng.integers(0, 6, 600)] + 0.8 * rng.normal(size=(600, 16))
    lens_dir = rng.normal(size=16)
    lenses = lens_dir + 0.35 * rng.normal(size=(30, 16))
    x = unit(np.concatenate([gal, lenses]))
    is_lens = np.r_[np.zeros(600, bool), np.ones(30, bool)]
    return x, is_lens


def test_known_lenses_lift_the_unknown_ones_above_random_objects(toy) -> None:
    x, is_lens = toy
    lens_rows = np.nonzero(is_lens)[0]
    known = lens_rows[:8]
    score = lens_scores(x, known, seed=0)
    unknown = np.ones(len(x), bool)
    unknown[known] = False
    assert auroc(score[unknown], is_lens[unknown]) > 0.97
    top = np.argsort(-score[unknown])[:22]
    assert is_lens[unknown][top].mean() >= 0.8  # precision@22 (22 unknown lenses)
    assert np.all(score[known] >= np.median(score))


def test_no_known_lenses_gives_nan(toy) -> None:
    x, _ = toy
    assert np.isnan(lens_scores(x, np.array([], dtype=np.int64))).all()


def test_isolated_points_are_the_most_anomalous_by_every_method() -> None:
    rng = np.random.default_rng(1)
    cluster = np.array([1.0] + [0.0] * 7) + 0.1 * rng.normal(size=(300, 8))
    outliers = rng.normal(size=(5, 8))
    x = unit(np.concatenate([cluster, outliers]))
    truth = np.r_[np.zeros(300, bool), np.ones(5, bool)]
    dist, ids = knn(x, 10)
    for method in ("mean", "kth", "lof"):
        s = anomaly_scores(dist, ids, method)
        assert s.shape == (305,) and s.dtype == np.float32
        assert auroc(s, truth) > 0.99, method
    table = compare_anomaly_scores(dist, ids, truth, ks=(5, 10))
    assert set(table) == {f"{m}@{k}" for m in ("mean", "kth", "lof") for k in (5, 10)}


def test_lof_is_relative_to_the_neighbourhood() -> None:
    """A sparse cluster is not anomalous to LOF (its density is normal for its neighbours),
    but it is to the plain kNN distance; a point just outside the dense cluster is to LOF."""
    rng = np.random.default_rng(2)
    dense = np.array([1.0, 0, 0, 0]) + 0.02 * rng.normal(size=(200, 4))
    sparse = np.array([0, 1.0, 0, 0]) + 0.25 * rng.normal(size=(200, 4))
    near_dense = np.array([[1.0, 0.25, 0, 0]])
    x = unit(np.concatenate([dense, sparse, near_dense]))
    dist, ids = knn(x, 10)
    lof = lof_anomaly(dist, ids)
    mean = knn_anomaly(dist)
    assert np.median(lof[200:400]) < 1.5 and np.median(lof[:200]) < 1.5
    assert lof[400] > np.quantile(lof[:400], 0.99)
    assert np.median(mean[200:400]) > 5 * np.median(mean[:200])
    np.testing.assert_allclose(kth_anomaly(dist), dist[:, 10])


def test_auroc_matches_a_pairwise_count() -> None:
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=200), rng.random(200) < 0.2
    s[:10] = 0.5  # ties count half
    pos, neg = s[y], s[~y]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(s, y) == pytest.approx(pairs)
    assert np.isnan(auroc(s, np.zeros(200, bool)))


def test_fewer_objects_than_k_gives_finite_scores() -> None:
    x = unit(np.random.default_rng(4).normal(size=(4, 8)))
    index = faiss.IndexFlatIP(8)
    index.add(x)
    sims, ids = index.search(x, 7)  # only 4 exist: ids -1, sims -inf-ish
    dist = np.where(ids >= 0, 1.0 - sims, np.inf).astype(np.float32)
    for method in ("mean", "kth", "lof"):
        assert np.isfinite(anomaly_scores(dist, ids, method)).all(), method
    with pytest.raises(ValueError, match="anomaly method"):
        anomaly_scores(dist, ids, "median")


def test_lof_agrees_with_scikit_learn_and_is_blockwise_exact() -> None:
    from sklearn.neighbors import LocalOutlierFactor

    x = unit(np.random.default_rng(5).normal(size=(500, 8)))
    dist, ids = knn(x, 10)
    ours = lof_anomaly(dist, ids)
    ref = -LocalOutlierFactor(n_neighbors=10, metric="cosine").fit(x).negative_outlier_factor_
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(lof_anomaly(dist, ids, block=37), ours)
