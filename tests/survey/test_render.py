"""Colour composites: shape, dtype, which band goes to which colour, and north up."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from survey.render import contact_sheet, png_bytes, to_rgb

# astropy's Lupton stretch divides by the intensity before masking zero-intensity pixels to 0.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")

BANDS = ("g", "r", "z")


def _stamp(h: int = 16, w: int = 12) -> np.ndarray:
    x = np.zeros((3, h, w), dtype=np.float32)
    x[:, 0, 3] = 5.0  # a bright pixel in array row 0 = the southern edge (FITS convention)
    return x


def test_shape_dtype_and_north_up():
    rgb = to_rgb(_stamp(), BANDS)
    assert rgb.shape == (16, 12, 3) and rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    # Displayed top-down, the south row must come last: the image is flipped vertically only.
    lit = np.argwhere(rgb.sum(axis=2) > 0)
    assert {tuple(p) for p in lit} == {(15, 3)}


def test_band_to_colour_mapping_and_grey_single_band():
    x = np.zeros((3, 4, 4), dtype=np.float32)
    x[0, 1, 1] = 3.0  # g only -> blue
    x[2, 2, 2] = 3.0  # z only -> red
    rgb = to_rgb(x, BANDS).astype(int)
    blue_px, red_px = rgb[4 - 1 - 1, 1], rgb[4 - 1 - 2, 2]
    assert blue_px[2] > 0 and blue_px[0] == 0 and blue_px[1] == 0
    assert red_px[0] > 0 and red_px[2] == 0 and red_px[1] == 0
    grey = to_rgb(x[:1], ("r",))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])


def test_nan_and_negative_pixels_render_as_sky():
    x = np.full((3, 5, 5), np.nan, dtype=np.float32)
    x[:, 0, 0] = -1.0
    rgb = to_rgb(x, BANDS)
    assert rgb.shape == (5, 5, 3) and int(rgb.max()) == 0


def test_contact_sheet_layout():
    stamps = [_stamp() for _ in range(5)]
    sheet = contact_sheet(stamps, BANDS, columns=3, scale=2)
    # 3 columns x 12 px x2 + 2 px gaps; 2 rows x 16 px x2 + one 2 px gap
    assert sheet.size == (3 * 24 + 2 * 2, 2 * 32 + 2)
    arr = np.asarray(sheet)
    assert arr.dtype == np.uint8 and arr.shape == (66, 76, 3)
    # the first tile's bright pixel, enlarged 2x, sits in its bottom rows (north up)
    assert arr[30:32, 6:8].sum() > 0 and arr[0:2, 6:8].sum() == 0


def test_png_bytes_decode_to_the_requested_size():
    png = png_bytes(_stamp(16, 16), BANDS, size_px=64)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (64, 64) and img.mode == "RGB"


@pytest.mark.parametrize(("stretch", "q"), [(1e-3, 100.0), (1e-3, 0.0), (100.0, 0.0), (100.0, 100.0)])
def test_extreme_allowed_stretches_render_defined_bytes(stretch: float, q: float) -> None:
    x = _stamp()
    x[:, 30:34, 30:34] = 1e7  # a saturated star
    with warnings.catch_warnings():
        # an overflow in the cast to bytes would leave undefined pixel values
        warnings.filterwarnings("error", message=".*encountered in cast")
        rgb = to_rgb(x, BANDS, stretch, q)
    assert rgb.dtype == np.uint8 and rgb.shape == (x.shape[1], x.shape[2], 3)


@pytest.mark.parametrize("stretch", [1e-40, 0.0, -1.0, float("inf"), float("nan")])
def test_stretches_that_overflow_are_refused_by_name(stretch: float) -> None:
    with pytest.raises(ValueError, match="stretch must be in"):
        to_rgb(_stamp(), BANDS, stretch)
