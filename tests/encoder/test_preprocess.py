from __future__ import annotations

import numpy as np
import pytest
import torch

from encoder.errors import IncompatibleInput
from encoder.preprocess import PreprocessConfig, center_crop, check_finite, preprocess

CFG = PreprocessConfig(bands=("g", "r", "z"), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(0.01, 0.02, 0.04))


def test_arcsinh_stretch_per_band_and_centre_crop() -> None:
    x = np.zeros((2, 3, 64, 64), dtype=np.float32)
    x[:, 0, 32, 32], x[:, 1, 32, 32], x[:, 2, 32, 32] = 1.0, 2.0, 4.0
    y = preprocess(x, CFG)
    assert y.shape == (2, 3, 32, 32) and y.dtype == torch.float32
    # The bright pixel lands at (16, 16) of the centred 32 px crop; each band is scaled by its own noise.
    expected = np.arcsinh(np.array([1 / 0.01, 2 / 0.02, 4 / 0.04])) / 3.0
    np.testing.assert_allclose(y[0, :, 16, 16].numpy(), expected, rtol=1e-6)
    assert float(y.abs().sum()) == pytest.approx(float(2 * expected.sum()), rel=1e-6)


def test_nan_pixels_become_sky() -> None:
    x = np.full((1, 3, 32, 32), np.nan, dtype=np.float32)
    x[0, :, 0, 0] = 0.5
    y = preprocess(x, CFG)
    assert torch.isfinite(y).all() and float(y[0, 0, 1, 1]) == 0.0 and float(y[0, 0, 0, 0]) > 0


def test_wrong_band_count_is_refused_naming_both_counts() -> None:
    with pytest.raises(IncompatibleInput, match="5 band.*3"):
        preprocess(np.zeros((1, 5, 32, 32), np.float32), CFG)
    with pytest.raises(IncompatibleInput, match=r"\(N, C, H, W\)"):
        preprocess(np.zeros((3, 32, 32), np.float32), CFG)


def test_too_small_is_refused() -> None:
    with pytest.raises(IncompatibleInput, match="20x20.*32x32"):
        center_crop(torch.zeros(1, 3, 20, 20), 32)


def test_check_finite() -> None:
    with pytest.raises(IncompatibleInput, match="every pixel is NaN"):
        check_finite(np.full((3, 8, 8), np.nan), "upload.fits")
    with pytest.raises(IncompatibleInput, match="empty"):
        check_finite(np.zeros((3, 0, 0)), "upload.fits")
    check_finite(np.ones((3, 8, 8)), "ok")


def test_band_scale_must_match_bands() -> None:
    with pytest.raises(ValueError, match="one value per band"):
        PreprocessConfig(bands=("g", "r"), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(1.0,))


def test_smoothing_conserves_flux_and_cuts_pixel_noise_by_the_gaussian_factor() -> None:
    from encoder.preprocess import smooth

    point = torch.zeros(1, 2, 15, 15)
    point[0, :, 7, 7] = 1.0
    out = smooth(point, 1.0)
    torch.testing.assert_close(out.sum((2, 3)), torch.ones(1, 2))
    assert abs(float(out[0, 0, 7, 7]) - 1 / (2 * np.pi)) < 1e-3  # a unit-sigma Gaussian's peak
    # white noise through a sigma-px Gaussian keeps 1 / (2 sigma sqrt(pi)) of its rms (0.282 at 1 px)
    noise = np.random.default_rng(0).normal(0, 1.0, (4, 1, 64, 64)).astype(np.float32)
    cfg = dict(bands=("r",), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(1e3,), output_divisor=1.0)
    plain = preprocess(noise, PreprocessConfig(**cfg)).std().item()
    smoothed = preprocess(noise, PreprocessConfig(**cfg, smooth_px=1.0)).std().item()
    assert 0.25 < smoothed / plain < 0.31


def test_smoothing_is_the_same_on_the_training_and_search_paths_and_masks_do_not_spread() -> None:
    cfg = PreprocessConfig(bands=("g", "r"), pixel_scale_arcsec=0.262, input_size_px=16, band_scale=(0.1, 0.1),
                           smooth_px=1.5)
    x = np.random.default_rng(1).normal(0, 0.1, (2, 2, 16, 16)).astype(np.float32)
    torch.testing.assert_close(preprocess(x, cfg), preprocess(x, cfg, crop=False))
    x[0, 0, 2, 2] = np.nan
    y = preprocess(x, cfg)
    assert torch.isfinite(y).all() and float(y[0, 0, 2, 2]) != 0.0  # the hole is sky, smoothed like its neighbours
    with pytest.raises(ValueError):
        PreprocessConfig(bands=("g",), pixel_scale_arcsec=0.262, input_size_px=16, band_scale=(0.1,), smooth_px=-1)
