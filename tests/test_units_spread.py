"""Units are data: a nanomaggy survey, the same survey in ~1e-12 flux units and a 0-255 display
survey each reach the encoder as O(1) inputs, so their embeddings are spread out (median pairwise
cosine distance >= 0.05) instead of collapsing to one point; an encoder refuses a survey whose kind
of units it was not trained on, by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder.embed import embed_array
from encoder.errors import IncompatibleInput
from encoder.preprocess import preprocess
from encoder.weights import load_encoder
from survey.native import NativeSurvey, shard_name, write_shard
from survey.render import to_rgb
from survey.units import measure

MIN_SPREAD = 0.05


def median_cosine_distance(e: np.ndarray) -> float:
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    d = 1.0 - e @ e.T
    return float(np.median(d[np.triu_indices(len(e), 1)]))


@pytest.fixture(scope="module")
def trained_encoder(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test encoder trained a little longer (40 steps): 4 steps leave it nearly constant."""
    return quick_train(tiny_survey, tmp_path_factory.mktemp("spread"))


def quick_train(survey: Path, out: Path) -> Path:
    from training.augment import AugmentSettings
    from training.loop import train
    from training.settings import TrainSettings

    return train(TrainSettings(survey=survey, out_dir=out, epochs=12, max_steps=40, batch_size=16, queue_size=64,
                               proj_hidden=64, proj_dim=32, workers=0, monitor_size=0,
                               augment=AugmentSettings(redden=False),
                               backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, device="cpu"))


@pytest.fixture(scope="module")
def flux_survey(tiny_survey: Path) -> NativeSurvey:
    return NativeSurvey(tiny_survey)


def variant(tmp: Path, s: NativeSurvey, images: np.ndarray, units: str) -> NativeSurvey:
    rows = np.arange(len(images))
    write_shard(tmp / shard_name(0), images, s.catalog.take(rows), s.bands, s.pixel_scale_arcsec, "variant",
                units=measure(images, s.bands, (units,) * len(s.bands)))
    return NativeSurvey(tmp)


def test_tiny_flux_units_give_the_same_inputs_and_spread_embeddings(
        flux_survey: NativeSurvey, trained_encoder: Path, tmp_path: Path) -> None:
    encoder, card = load_encoder(trained_encoder)
    images = flux_survey.images(np.arange(120))
    tiny = variant(tmp_path, flux_survey, images * 1e-12, "erg/s/cm2/Hz")
    assert tiny.units.per_band[0].noise == pytest.approx(flux_survey.units.per_band[0].noise * 1e-12, rel=0.05)
    a = card.for_survey(variant(tmp_path / "a", flux_survey, images, "nanomaggies").units)
    b = card.for_survey(tiny.units)
    xa, xb = preprocess(images, a.preprocess), preprocess(tiny.images(np.arange(120)), b.preprocess)
    assert float(xa.std()) > 0.1
    np.testing.assert_allclose(xb.numpy(), xa.numpy(), rtol=1e-3, atol=1e-4)
    for c, s in ((a, images), (b, tiny.images(np.arange(120)))):
        spread = median_cosine_distance(embed_array(encoder, c, s))
        assert spread >= MIN_SPREAD, spread


def test_card_levels_alone_would_have_collapsed_the_tiny_unit_survey(
        flux_survey: NativeSurvey, trained_encoder: Path) -> None:
    """Why the survey's levels matter: with the training survey's constants, 1e-12 fluxes are zeros."""
    encoder, card = load_encoder(trained_encoder)
    images = flux_survey.images(np.arange(60)) * 1e-12
    assert float(preprocess(images, card.preprocess).abs().max()) < 1e-6


def test_display_255_survey_is_spread_and_refused_by_a_flux_encoder(
        flux_survey: NativeSurvey, trained_encoder: Path, tmp_path: Path) -> None:
    images = flux_survey.images(np.arange(120))
    shown = np.stack([to_rgb(x, flux_survey.bands)[::-1].transpose(2, 0, 1)[::-1] for x in images])  # (N, 3, H, W)
    display = variant(tmp_path, flux_survey, shown.astype(np.float32), "display255")
    assert display.units.kind == "display"
    encoder, card = load_encoder(trained_encoder)
    with pytest.raises(IncompatibleInput, match="trained on flux images but this survey holds display"):
        card.for_survey(display.units)
    # An encoder trained on the display survey itself records display preprocessing:
    encoder, c = load_encoder(quick_train(tmp_path, tmp_path / "run"))
    assert c.preprocess.kind == "display" and c.preprocess.units == ("display255",) * 3
    c = c.for_survey(display.units)
    x = preprocess(display.images(np.arange(120)), c.preprocess)
    assert 0.3 < float(x.std()) < 3.0  # O(1) whatever the 0-255 scale
    assert median_cosine_distance(embed_array(encoder, c, display.images(np.arange(120)))) >= MIN_SPREAD


def test_a_band_without_measurable_noise_is_refused(flux_survey: NativeSurvey, trained_encoder: Path,
                                                    tmp_path: Path) -> None:
    images = flux_survey.images(np.arange(20))
    images[:, 1] = 0.0
    flat = variant(tmp_path, flux_survey, images, "nanomaggies")
    _, card = load_encoder(trained_encoder)
    with pytest.raises(IncompatibleInput, match="no measurable background noise"):
        card.for_survey(flat.units)
