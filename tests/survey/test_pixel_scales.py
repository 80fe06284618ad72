"""Pixel scales that are present but unusable are named, never overflow: a header's PIXSCALE or
WCS of 1e-300 arcsec, a zero CDELT, a subnormal scale handed to the resampler."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from survey.readers import resize
from survey.readers.errors import CalibrationError
from survey.readers.fits_header import celestial_wcs, pixel_scale
from survey.readers.resize import conform, resample


def tan_header(cdelt1_deg: float, cdelt2_deg: float) -> fits.Header:
    h = fits.Header()
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 150.0), ("CRVAL2", 2.0),
                       ("CRPIX1", 32.5), ("CRPIX2", 32.5), ("CDELT1", cdelt1_deg), ("CDELT2", cdelt2_deg)):
        h[key] = value
    return h


@pytest.mark.parametrize("scale", [5e-324, 1e-300, 1e300])
def test_conform_refuses_scales_whose_ratio_overflows(scale: float) -> None:
    """Was OverflowError (math.ceil of inf) for 5e-324: now a ValueError naming both scales."""
    with pytest.raises(ValueError, match="differ by more than a factor"):
        conform(np.zeros((3, 64, 64), np.float32), scale, 0.262, 64)


def test_resample_refuses_an_output_no_one_cropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound on the output side, checked at a small size (the real one is 16384 px)."""
    monkeypatch.setattr(resize, "MAX_RESAMPLED_SIDE_PX", 100)
    with pytest.raises(ValueError, match="px a side"):
        resample(np.zeros((1, 64, 64), np.float32), 0.262, 0.131)  # 128 px a side
    assert resample(np.zeros((1, 64, 64), np.float32), 0.262, 0.2).shape == (1, 84, 84)


@pytest.mark.parametrize(("value", "words"), [(1e-300, "PIXSCALE = 1e-300"), (0.0, "PIXSCALE = 0"),
                                               (-0.2, "PIXSCALE = -0.2"), (1e5, "PIXSCALE = 100000"),
                                               ("fine", "is not a number")])
def test_an_unusable_pixscale_key_is_named(value: object, words: str) -> None:
    h = fits.Header()
    h["PIXSCALE"] = value
    with pytest.raises(CalibrationError, match=words):
        pixel_scale(h, None, "x.fits")


def test_a_tiny_wcs_scale_is_named() -> None:
    h = tan_header(-1e-300, 1e-300)
    with pytest.raises(CalibrationError, match="WCS pixel scale"):
        pixel_scale(h, celestial_wcs(h, "x.fits"), "x.fits")


@pytest.mark.parametrize(("cdelt", "words"), [((0.0, 0.0), "CDELT1 and CDELT2 = 0"), ((1e-4, 0.0), "CDELT2 = 0")])
def test_a_zero_cdelt_is_named_not_reported_as_no_wcs(cdelt: tuple[float, float], words: str) -> None:
    with pytest.raises(CalibrationError, match=words):
        celestial_wcs(tan_header(*cdelt), "x.fits")


def test_usable_scales_still_read() -> None:
    h = tan_header(-0.262 / 3600, 0.262 / 3600)
    assert pixel_scale(h, celestial_wcs(h), "x.fits") == pytest.approx(0.262)
    assert celestial_wcs(fits.Header()) is None
