"""The lens learner of a version with radial profiles (indexer.profiles, indexer.lens_mlp, the MLP path
of indexer.lens_learning): what the profiles measure, that the MLP learns what a linear score cannot,
and that a ranking learned from votes is the same whenever it is rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.lens_learning import LensLearner, learner_inputs
from indexer.lens_mlp import fit_mlp
from indexer.profiles import EDGES_ARCSEC, n_features, radial_profiles
from indexer.scores import auroc


def ring(size: int, radius_px: float, flux: float, bands: tuple[float, ...]) -> np.ndarray:
    """(C, size, size): a thin ring of `flux` per pixel at `radius_px`, scaled per band."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    img = flux * (np.abs(r - radius_px) < 0.75)
    return np.stack([b * img for b in bands]).astype(np.float32)


def annulus_of(radius_arcsec: float) -> int:
    return int(np.searchsorted(EDGES_ARCSEC, radius_arcsec, side="right") - 1)


def test_a_ring_lights_its_annulus_in_its_bands_at_any_pixel_scale() -> None:
    a = len(EDGES_ARCSEC) - 1
    for scale, size in ((0.262, 64), (0.1, 160)):
        radius_arcsec = 1.8
        img = ring(size, radius_arcsec / scale, 50.0, (1.0, 0.2, 0.0))[None]  # blue: all of it in band 0
        f = radial_profiles(img, np.ones(3), None, scale)
        assert f.shape == (1, n_features(3))
        profile = f[0, : 3 * a].reshape(3, a)
        assert profile[0].argmax() == annulus_of(radius_arcsec), (scale, profile[0])
        assert profile[0].max() > 2 and np.all(profile[2] == 0)  # arcsinh(mean) in noise units; empty band
        share = f[0, 6 * a :].reshape(3, a)[:, annulus_of(radius_arcsec)]
        assert share[0] > 4 * share[1] > 0 and share[2] == 0


def test_profiles_are_in_noise_units_and_empty_annuli_are_zero() -> None:
    img = ring(64, 6.0, 50.0, (1.0, 1.0))[None]
    one = radial_profiles(img, np.ones(2), None, 0.262)
    deep = radial_profiles(img * 1e-12, np.full(2, 1e-12), None, 0.262)  # the same stamp in other units
    assert np.allclose(one, deep, atol=1e-4)
    small = radial_profiles(ring(8, 2.0, 50.0, (1.0,))[None], np.ones(1), np.zeros(1), 0.262)
    assert np.all(small[0, annulus_of(3.0) : len(EDGES_ARCSEC) - 1] == 0)  # beyond an 8 px stamp


def test_the_mlp_learns_a_ring_that_a_linear_score_cannot() -> None:
    """Positives on a ring (|x| ~ 2) among negatives at the centre and far out: no straight line
    separates them."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 2)).astype(np.float32)
    r = np.linalg.norm(x, axis=1)
    y = ((r > 1.8) & (r < 2.4)).astype(np.float32)
    w = np.where(y == 1, (y == 0).sum() / y.sum(), 1.0)
    train, test = np.arange(2000), np.arange(2000, 3000)
    mlp = fit_mlp(x[train], y[train], w[train], seed=0)
    linear = LogisticRegression().fit(x[train], y[train], sample_weight=w[train]).decision_function(x[test])
    assert auroc(mlp.predict(x[test]), y[test].astype(bool)) > 0.9 > 0.7 > auroc(linear, y[test].astype(bool))
    again = fit_mlp(x[train], y[train], w[train], seed=0)
    assert np.array_equal(mlp.predict(x), again.predict(x))  # the same arguments, the same model


@pytest.fixture(scope="module")
def survey() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3,000 objects: 16-d embeddings in which 80 lenses are not apart, and 12 profile features in
    which they are (a brighter, bluer ring), as in the simulation."""
    rng = np.random.default_rng(5)
    n, lenses = 3000, 80
    truth = np.zeros(n, bool)
    truth[rng.choice(n, lenses, replace=False)] = True
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feats = rng.normal(size=(n, 12)).astype(np.float32)
    feats[truth, 3] += 3.0  # a brighter ring
    feats[truth, 7] += 1.5  # and bluer
    return emb.astype(np.float16), feats.astype(np.float16), truth


def test_votes_teach_the_mlp_and_each_vote_is_an_answer(survey) -> None:
    emb, feats, truth = survey
    lens = np.nonzero(truth)[0]
    seeds, held_out = lens[:10], lens[10:]
    learner = LensLearner(emb, seeds, features=feats)
    before = learner.scores([], [])
    order = np.argsort(-np.where(np.isin(np.arange(len(truth)), seeds), -np.inf, before))[:40]
    pos, neg = [int(r) for r in order if truth[r]], [int(r) for r in order if not truth[r]]
    after = learner.scores(pos, neg)
    assert np.all(after[pos] == 1) and np.all(after[neg] == 0)
    rest = np.setdiff1d(np.arange(len(truth)), np.concatenate([seeds, pos, neg]))
    auc_before, auc_after = auroc(before[rest], truth[rest]), auroc(after[rest], truth[rest])
    assert auc_before > 0.8 and auc_after >= auc_before - 0.02, (auc_before, auc_after)
    top = np.argsort(-np.where(np.isin(np.arange(len(truth)), np.concatenate([seeds, pos, neg])), -np.inf, after))
    found = np.intersect1d(top[:60], held_out)
    assert len(found) >= 0.5 * (len(held_out) - len(pos)), len(found)  # the lenses still unvoted come first
    assert np.isnan(LensLearner(emb, [], features=feats).scores([], [])).all()  # nothing known: no score


def test_a_ranking_rebuilt_from_version_and_votes_is_bit_for_bit_the_one_served(survey) -> None:
    emb, feats, truth = survey
    lens = np.nonzero(truth)[0]
    served = LensLearner(emb, lens[:10], features=feats)
    others = np.nonzero(~truth)[0]
    pos: list[int] = []
    neg: list[int] = []
    for r in range(6):  # vote by vote, the kept learner against a fresh one
        if r % 2 == 0:
            pos.append(int(lens[20 + r]))
        else:
            neg.append(int(others[r]))
        kept = served.scores(pos, neg)
        fresh = LensLearner(emb, lens[:10], features=feats).scores(pos, neg)
        assert np.array_equal(kept, fresh), r


def test_inputs_are_standardised_profiles_then_principal_components(survey) -> None:
    emb, feats, _ = survey
    x = learner_inputs(emb, feats)
    assert x.shape == (len(emb), feats.shape[1] + 16) and x.dtype == np.float32
    assert np.all(np.abs(x[:, :12]) <= 10)
    pcs = x[:, 12:]
    assert np.allclose(pcs.std(axis=0), 1, atol=0.05)
    cov = np.cov(pcs.T)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.05  # uncorrelated


def test_a_built_version_holds_the_profiles_of_its_survey(published_tiny, tiny_survey) -> None:
    from indexer.profiles import survey_profiles
    from indexer.store import IndexedSurvey
    from survey.native import NativeSurvey

    store = IndexedSurvey.open_current(published_tiny)
    survey = NativeSurvey(tiny_survey)
    assert store.lens_features is not None and store.lens_features.dtype == np.float16
    assert store.lens_features.shape == (len(store), n_features(len(survey.bands)))
    assert np.array_equal(store.lens_features, survey_profiles(survey).astype(np.float16))
    assert np.abs(np.asarray(store.lens_features, np.float32)).max() > 0


def test_the_built_score_is_blended_in_and_a_missing_one_is_not(survey) -> None:
    from indexer.lens_learning import PRIOR_WEIGHT

    emb, feats, truth = survey
    seeds = np.nonzero(truth)[0][:10]
    prior = np.random.default_rng(1).random(len(emb)).astype(np.float32)
    alone = LensLearner(emb, seeds, features=feats).scores([], [])
    blended = LensLearner(emb, seeds, features=feats, prior=prior).scores([], [])
    assert np.allclose(blended, (1 - PRIOR_WEIGHT) * alone + PRIOR_WEIGHT * prior, atol=1e-6)
    missing = LensLearner(emb, seeds, features=feats, prior=np.full(len(emb), np.nan, np.float32)).scores([], [])
    assert np.array_equal(missing, alone)
