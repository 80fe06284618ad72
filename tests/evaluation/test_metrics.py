"""Metric functions on hand-made cases with answers worked out on paper, plus agreement with
scikit-learn's implementations on random data with ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from evaluation.metrics import (
    auroc,
    average_precision,
    downsample_curve,
    mean_average_precision,
    photoz_by_bin,
    photoz_metrics,
    precision_at_k,
    precision_recall_curve,
    ranked_average_precision,
    reach_fraction,
    recall_at_k,
    roc_curve,
)


def test_a_perfect_ranking_has_recall_one_and_auprc_one():
    positive = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.where(positive, 10.0, 1.0) + np.arange(10) * 0.01  # every positive above every negative
    assert recall_at_k(scores, positive, 3) == 1.0
    assert recall_at_k(scores, positive, 2) == pytest.approx(2 / 3)
    assert precision_at_k(scores, positive, 3) == 1.0
    assert average_precision(scores, positive) == 1.0
    assert auroc(scores, positive) == 1.0
    fpr, tpr = roc_curve(scores, positive)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and tpr[np.argmax(fpr > 0)] == 1.0  # all positives before any negative


def test_a_reversed_ranking_has_known_values():
    # 4 objects, the 2 positives ranked last: AP = (1/3 + 2/4) / 2 = 5/12
    positive = np.array([1, 1, 0, 0], dtype=bool)
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    assert average_precision(scores, positive) == pytest.approx(5 / 12)
    assert recall_at_k(scores, positive, 2) == 0.0 and recall_at_k(scores, positive, 3) == 0.5
    assert precision_at_k(scores, positive, 1) == 0.0 and precision_at_k(scores, positive, 4) == 0.5
    assert auroc(scores, positive) == 0.0
    # one positive ranked last among four: AP = 1/4
    assert average_precision(np.array([4.0, 3, 2, 1]), np.array([0, 0, 0, 1], dtype=bool)) == pytest.approx(0.25)


def test_known_ordering_auroc_and_average_precision():
    # scikit-learn's documented example: AUROC 0.75 (3 of 4 positive-negative pairs in order),
    # AP = 1/2 * 1 (first threshold 0.8) + 1/2 * 2/3 (threshold 0.35: 2 of 3 above it) = 5/6
    positive = np.array([0, 0, 1, 1], dtype=bool)
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert auroc(scores, positive) == pytest.approx(0.75)
    assert average_precision(scores, positive) == pytest.approx(5 / 6)
    precision, recall, thr = precision_recall_curve(scores, positive)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr, [0.8, 0.4, 0.35, 0.1])


def test_precision_at_k_counts_positives_in_the_top_k():
    positive = np.array([1, 0, 1, 0], dtype=bool)
    scores = np.array([4.0, 3.0, 2.0, 1.0])  # positives at ranks 1 and 3
    assert [precision_at_k(scores, positive, k) for k in (1, 2, 3, 4)] == pytest.approx([1, 0.5, 2 / 3, 0.5])
    assert precision_at_k(scores, positive, 10) == 0.5  # k beyond N: all N objects
    # NaN ranks last
    assert precision_at_k(np.array([np.nan, 1.0, 0.5, 0.0]), positive, 1) == 0.0
    with pytest.raises(ValueError):
        precision_at_k(scores, positive, 0)
    assert np.isnan(recall_at_k(scores, np.zeros(4, dtype=bool), 2))


def test_tied_scores_give_the_positive_rate_not_a_lucky_order():
    positive = np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=bool)
    flat = np.ones(8)
    assert average_precision(flat, positive) == pytest.approx(0.25)  # one threshold: P = 2/8, R = 1
    assert auroc(flat, positive) == 0.5


def test_metrics_agree_with_scikit_learn_on_random_rankings_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 200))
        positive = rng.random(n) < rng.uniform(0.05, 0.5)
        positive[0], positive[-1] = True, False
        scores = np.round(rng.normal(size=n) + positive * rng.uniform(0, 2), 1)  # rounding makes ties
        assert average_precision(scores, positive) == pytest.approx(average_precision_score(positive, scores))
        assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))


def test_mean_average_precision_on_a_hand_made_case():
    # query 1: results [rel, -, rel, -] of 2 relevant: AP = (1/1 + 2/3) / 2 = 5/6
    # query 2: results [-, rel, -, -] of 2 relevant (one never returned): AP = (1/2) / 2 = 1/4
    # query 3: nothing relevant anywhere: left out of the mean
    relevant = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    ap = ranked_average_precision(relevant, np.array([2, 2, 0]))
    np.testing.assert_allclose(ap[:2], [5 / 6, 1 / 4])
    assert np.isnan(ap[2])
    assert mean_average_precision(relevant, np.array([2, 2, 0])) == pytest.approx((5 / 6 + 1 / 4) / 2)
    assert mean_average_precision(np.ones((3, 5), dtype=bool), 5) == 1.0


def test_constant_photoz_predictor_gives_the_known_scatter_by_bin():
    z = np.array([0.1, 0.3, 0.5, 0.9])
    mag = np.array([17.0, 17.2, 18.6, 18.9])
    # predicting 0.3 always: dz = [0.2/1.1, 0, -0.2/1.5, -0.6/1.9] = [0.1818, 0, -0.1333, -0.3158]
    # median(dz) = -0.0667; |dz - median| = [0.2485, 0.0667, 0.0667, 0.2491] -> median 0.1576
    dz = np.array([0.2 / 1.1, 0.0, -0.2 / 1.5, -0.6 / 1.9])
    med = (0.0 - 0.2 / 1.5) / 2
    mad = (abs(-0.2 / 1.5 - med) + abs(0.2 / 1.1 - med)) / 2
    m = photoz_metrics(np.full(4, 0.3), z)
    assert m["bias"] == pytest.approx(med) and m["sigma_mad"] == pytest.approx(1.4826 * mad)
    assert m["outlier_fraction"] == 0.75 and m["n"] == 4  # |dz| > 0.05 for all but z = 0.3
    assert np.sum(np.abs(dz) > 0.05) == 3
    bins = photoz_by_bin(np.full(4, 0.3), z, mag, [16.0, 18.0, 19.0, 20.0])
    assert [b["n"] for b in bins] == [2, 2, 0]
    assert bins[0]["sigma_mad"] == pytest.approx(1.4826 * abs(0.2 / 1.1 - 0.0) / 2)
    assert bins[1]["outlier_fraction"] == 1.0 and bins[2]["sigma_mad"] is None
    assert (bins[0]["lo"], bins[-1]["hi"]) == (16.0, 20.0)
    # bins are [lo, hi) except the last, which is closed
    edge = photoz_by_bin(np.full(3, 0.3), z[:3], np.array([18.0, 19.0, 20.0]), [16.0, 18.0, 19.0, 20.0])
    assert [b["n"] for b in edge] == [0, 1, 2]


def test_reach_fraction_interpolates_in_log_fraction():
    fractions, scores = [0.01, 0.1, 1.0], [0.2, 0.6, 0.9]
    interp, first = reach_fraction(fractions, scores, 0.4)  # halfway from 0.2 to 0.6: 10^-1.5
    assert first == 0.1 and interp == pytest.approx(10**-1.5)
    assert reach_fraction(fractions, scores, 0.1) == (0.01, 0.01)
    assert reach_fraction(fractions, scores, 0.6) == (pytest.approx(0.1), 0.1)
    assert reach_fraction(fractions, scores, 0.95) == (None, None)


def test_downsample_curve_keeps_ends():
    c = downsample_curve(np.arange(1000), np.arange(1000) * 2.0, n=50)
    assert len(c["x"]) == 50 and c["x"][0] == 0 and c["x"][-1] == 999 and c["y"][-1] == 1998


def test_nan_scores_pass_no_threshold_and_edges_give_nan():
    # positives at 0.9 and NaN, negatives at 0.5 and NaN: the NaN positive is never recalled
    positive = np.array([1, 1, 0, 0], dtype=bool)
    scores = np.array([0.9, np.nan, 0.5, np.nan])
    precision, recall, thr = precision_recall_curve(scores, positive)
    np.testing.assert_allclose(precision, [1, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5])
    np.testing.assert_allclose(thr, [0.9, 0.5])
    assert average_precision(scores, positive) == pytest.approx(0.5)
    fpr, tpr = roc_curve(scores, positive)
    np.testing.assert_allclose(fpr, [0, 0, 0.5])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5])
    assert average_precision(np.array([np.nan, 1.0]), np.array([1, 0], dtype=bool)) == 0.0
    assert np.isnan(average_precision(scores, np.zeros(4, dtype=bool)))
    assert np.isnan(auroc(scores, positive))  # scikit-learn would raise on a NaN score
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.ones(2, dtype=bool)))
    assert auroc(np.array([np.inf, -np.inf, 0.0]), np.array([1, 0, 0], dtype=bool)) == 1.0
    with pytest.raises(ValueError):
        precision_recall_curve(scores, np.zeros(4, dtype=bool))
