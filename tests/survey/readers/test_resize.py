"""survey.readers.resize: pad/crop, flux-conserving resampling, and one common grid for stamps."""

from __future__ import annotations

import numpy as np
import pytest
from survey_files import COSMOS

from survey.readers.fits_stamps import FitsStamps
from survey.readers.resize import pad_crop, resample, to_common


def test_pad_crop_and_resample():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    crop = pad_crop(x, 3)
    np.testing.assert_array_equal(crop, x[:, 1:4, 1:4])
    pad = pad_crop(x, 7)
    assert pad.shape == (2, 7, 7) and np.isnan(pad[:, 0]).all()
    np.testing.assert_array_equal(pad[:, 1:6, 1:6], x)
    flat = np.ones((1, 40, 40), np.float32)
    half = resample(flat, 0.1, 0.2)
    assert half.shape == (1, 20, 20) and half.sum() == pytest.approx(flat.sum(), rel=1e-5)


def test_to_common_brings_cosmos_stamps_to_one_grid():
    stamps = FitsStamps(
        COSMOS / "real_galaxy_images_23.5_n1.fits",
        galsim_catalog=COSMOS / "real_galaxy_catalog_23.5.fits",
    )
    out = [to_common(c, 64, pixel_scale_arcsec=0.06) for c in stamps]
    assert {c.pixels.shape for c in out} == {(1, 64, 64)}
    assert {c.pixel_scale_arcsec for c in out} == {0.06}
