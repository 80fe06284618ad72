"""Instrumental artifacts: each kind changes the image the way its docstring says."""

import numpy as np
import pytest

from survey.simulate.artifacts import ARTIFACT_KINDS, add_artifact

SIGMA = (0.02, 0.025, 0.03)
SEEDS = range(12)


def _noisy(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    return (rng.normal(size=(3, size, size)) * np.array(SIGMA)[:, None, None]).astype(np.float32)


def _add(image: np.ndarray, kind: str, seed: int) -> np.ndarray:
    return add_artifact(
        image, kind, np.random.default_rng(seed), pixel_scale_arcsec=0.262, noise_sigma=SIGMA
    )


def _changed_bands(before: np.ndarray, after: np.ndarray) -> list[int]:
    return [c for c in range(before.shape[0]) if not np.array_equal(before[c], after[c])]


@pytest.mark.parametrize("kind", ARTIFACT_KINDS)
def test_each_kind_changes_a_copy_deterministically(kind):
    image = _noisy(0)
    original = image.copy()
    out = _add(image, kind, 7)
    np.testing.assert_array_equal(image, original)  # input untouched
    assert out is not image
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert not np.array_equal(out, image)
    np.testing.assert_array_equal(out, _add(image, kind, 7))
    assert not np.array_equal(out, _add(image, kind, 8))


def test_cosmic_ray_is_in_one_band_sharp_and_bright():
    for seed in SEEDS:
        image = _noisy(seed)
        out = _add(image, "cosmic_ray", seed)
        bands = _changed_bands(image, out)
        assert len(bands) == 1
        diff = out[bands[0]] - image[bands[0]]
        hit = diff != 0
        assert 1 <= hit.sum() <= 4 * 16  # a few hits/tracks, not a smear
        assert diff[hit].min() >= 20 * SIGMA[bands[0]] * 0.999


def test_satellite_trail_is_a_line_in_one_or_all_bands():
    counts = set()
    for seed in SEEDS:
        image = _noisy(seed)
        out = _add(image, "satellite_trail", seed)
        bands = _changed_bands(image, out)
        counts.add(len(bands))
        assert len(bands) in (1, 3)
        c = bands[0]
        bright = (out[c] - image[c]) > 1.5 * SIGMA[c]
        # crosses the whole stamp: it enters through one side and leaves through another
        sides = [bright[0].any(), bright[-1].any(), bright[:, 0].any(), bright[:, -1].any()]
        assert sum(sides) >= 2
        # and is thin: far fewer pixels than the stamp
        assert bright.sum() < 0.25 * bright.size
    assert counts == {1, 3}


def test_bad_column_is_constant_full_columns_in_one_band():
    for seed in SEEDS:
        image = _noisy(seed)
        out = _add(image, "bad_column", seed)
        bands = _changed_bands(image, out)
        assert len(bands) == 1
        c = bands[0]
        cols = np.flatnonzero(np.any(out[c] != image[c], axis=0))
        assert 1 <= cols.size <= 3
        assert np.ptp(cols) == cols.size - 1  # adjacent
        block = out[c][:, cols]
        assert np.all(block == block[0, 0])
        assert block[0, 0] == 0.0 or block[0, 0] >= 50 * SIGMA[c] * 0.999


def test_saturation_bleed_clips_at_one_level_with_a_vertical_trail():
    for seed in SEEDS:
        image = _noisy(seed)
        out = _add(image, "saturation_bleed", seed)
        assert _changed_bands(image, out) == [0, 1, 2]
        for c in range(3):
            level = out[c].max()
            saturated = out[c] == level
            assert saturated.sum() >= 5
            assert level > 100 * SIGMA[c]
            # the bleed makes the saturated region taller than it is wide
            ys, xs = np.nonzero(saturated)
            assert np.ptp(ys) > np.ptp(xs)


def test_ghost_is_large_faint_and_significant_in_total():
    for seed in SEEDS:
        image = _noisy(seed)
        out = _add(image, "ghost", seed)
        diff = out - image
        assert _changed_bands(image, out) == [0, 1, 2]
        for c in range(3):
            assert diff[c].max() <= 1.0 * SIGMA[c] * 1.001  # below the noise per pixel
            touched = diff[c] > 0.1 * SIGMA[c]
            assert touched.sum() > 150
            significance = diff[c][touched].sum() / (SIGMA[c] * np.sqrt(touched.sum()))
            assert significance > 4


def test_unknown_kind_names_it_and_the_valid_kinds():
    with pytest.raises(ValueError, match="lens_flare") as err:
        _add(_noisy(0), "lens_flare", 0)
    for kind in ARTIFACT_KINDS:
        assert kind in str(err.value)


def test_noise_sigma_must_match_bands():
    with pytest.raises(ValueError, match="3 bands"):
        add_artifact(
            _noisy(0),
            "ghost",
            np.random.default_rng(0),
            pixel_scale_arcsec=0.262,
            noise_sigma=(0.02, 0.02),
        )
