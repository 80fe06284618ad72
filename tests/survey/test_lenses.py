"""Simulated strong lenses: shape, determinism, and that the arcs sit at the Einstein radius."""

import time

import numpy as np
import pytest

from survey.simulate.lenses import (
    EINSTEIN_RADIUS_RANGE_ARCSEC,
    deflector_colours,
    draw_lens,
    draw_lens_components,
    source_colours,
)

BANDS = ("g", "r", "z")
PIXEL_SCALE = 0.262
PSF_FWHM = (1.4, 1.3, 1.2)
SEEDS = range(8)


def _components(seed: int):
    return draw_lens_components(
        np.random.default_rng(seed),
        bands=BANDS,
        size_px=64,
        pixel_scale_arcsec=PIXEL_SCALE,
        psf_fwhm_arcsec=PSF_FWHM,
    )


@pytest.fixture(scope="module")
def lenses():
    return [_components(seed) for seed in SEEDS]


def test_image_shape_dtype_and_finite():
    image, truth = draw_lens(
        np.random.default_rng(0),
        bands=BANDS,
        size_px=48,
        pixel_scale_arcsec=PIXEL_SCALE,
        psf_fwhm_arcsec=PSF_FWHM,
    )
    assert image.shape == (3, 48, 48)
    assert image.dtype == np.float32
    assert np.all(np.isfinite(image))
    assert image.min() >= 0.0  # noiseless: light only
    assert truth["is_lens"] is True


def test_same_seed_same_lens_and_components_add_up():
    kwargs = dict(bands=BANDS, size_px=64, pixel_scale_arcsec=PIXEL_SCALE, psf_fwhm_arcsec=PSF_FWHM)
    a, truth_a = draw_lens(np.random.default_rng(42), **kwargs)
    b, truth_b = draw_lens(np.random.default_rng(42), **kwargs)
    c, _ = draw_lens(np.random.default_rng(43), **kwargs)
    np.testing.assert_array_equal(a, b)
    assert truth_a == truth_b
    assert not np.array_equal(a, c)
    parts = draw_lens_components(np.random.default_rng(42), **kwargs)
    np.testing.assert_array_equal(parts.image, a)


def test_truth_ranges(lenses):
    for parts in lenses:
        t = parts.truth
        lo, hi = EINSTEIN_RADIUS_RANGE_ARCSEC
        assert lo <= t["einstein_radius_arcsec"] <= hi
        assert 0.2 <= t["z_lens"] <= 0.7
        assert t["z_source"] >= t["z_lens"] + 0.3
        assert 18.0 <= t["lens_mag_r"] <= 20.5
        assert 20.0 <= t["source_mag_r"] <= 22.5
        assert t["magnification"] > 1.0


def test_z_lens_is_respected():
    _, truth = draw_lens(
        np.random.default_rng(1),
        bands=BANDS,
        size_px=32,
        pixel_scale_arcsec=PIXEL_SCALE,
        psf_fwhm_arcsec=PSF_FWHM,
        z_lens=0.35,
    )
    assert truth["z_lens"] == 0.35
    assert truth["z_source"] > 0.65


def test_component_fluxes_match_magnitudes(lenses):
    r = BANDS.index("r")
    for parts in lenses:
        t = parts.truth
        lens_flux = 10 ** (-0.4 * (t["lens_mag_r"] - 22.5))
        src_flux = 10 ** (-0.4 * (t["source_mag_r"] - 22.5))
        # de Vaucouleurs wings leave the 16.8" stamp, so a few per cent of the deflector is missing
        assert 0.85 * lens_flux < parts.deflector[r].sum() <= 1.001 * lens_flux
        np.testing.assert_allclose(parts.source[r].sum(), t["magnification"] * src_flux, rtol=0.05)


def _radial(parts):
    """Radius (px) of every pixel from the true lens centre, and the summed-band arc image."""
    t = parts.truth
    source = parts.source.sum(axis=0)
    h, w = source.shape
    yy, xx = np.mgrid[0:h, 0:w]
    xc = (w - 1) / 2 + t["lens_center_x_arcsec"] / PIXEL_SCALE
    yc = (h - 1) / 2 + t["lens_center_y_arcsec"] / PIXEL_SCALE
    return np.hypot(xx - xc, yy - yc), source


def test_arc_profile_peaks_near_einstein_radius(lenses):
    for parts in lenses:
        radius, source = _radial(parts)
        edges = np.arange(0.0, 31.0, 1.0)
        flux, _ = np.histogram(radius, edges, weights=source)
        area, _ = np.histogram(radius, edges)
        peak_px = edges[np.argmax(flux / np.maximum(area, 1))] + 0.5
        theta_e_px = parts.truth["einstein_radius_arcsec"] / PIXEL_SCALE
        # +1 px: the annuli are 1 px wide and the 1.3" PSF fills the smallest rings in
        assert abs(peak_px - theta_e_px) <= 0.4 * theta_e_px + 1.0, (peak_px, theta_e_px)


def test_arc_light_sits_at_einstein_radius_with_a_sharp_psf():
    # With a 0.3" PSF the flux-weighted radius of the arcs measures the lensing geometry alone.
    for seed in SEEDS:
        parts = draw_lens_components(
            np.random.default_rng(seed),
            bands=BANDS,
            size_px=64,
            pixel_scale_arcsec=PIXEL_SCALE,
            psf_fwhm_arcsec=(0.3, 0.3, 0.3),
        )
        radius, source = _radial(parts)
        mean_px = (radius * source).sum() / source.sum()
        theta_e_px = parts.truth["einstein_radius_arcsec"] / PIXEL_SCALE
        assert abs(mean_px - theta_e_px) <= 0.4 * theta_e_px, (mean_px, theta_e_px)


def test_source_is_bluer_than_deflector(lenses):
    g, z = BANDS.index("g"), BANDS.index("z")
    for parts in lenses:
        src_gz = parts.source[g].sum() / parts.source[z].sum()
        lens_gz = parts.deflector[g].sum() / parts.deflector[z].sum()
        assert src_gz > lens_gz


def test_colour_helpers_reject_unknown_band():
    rng = np.random.default_rng(0)
    assert set(deflector_colours(0.4, rng, ("u", "g", "r", "i", "z"))) == {"u", "g", "r", "i", "z"}
    with pytest.raises(ValueError, match="Y"):
        source_colours(rng, ("g", "Y"))


def test_psf_count_must_match_bands():
    with pytest.raises(ValueError, match="3 bands"):
        draw_lens(
            np.random.default_rng(0),
            bands=BANDS,
            size_px=32,
            pixel_scale_arcsec=0.262,
            psf_fwhm_arcsec=(1.2, 1.3),
        )


def test_a_lens_takes_well_under_100_ms():
    rng = np.random.default_rng(5)
    kwargs = dict(bands=BANDS, size_px=64, pixel_scale_arcsec=PIXEL_SCALE, psf_fwhm_arcsec=PSF_FWHM)
    draw_lens(rng, **kwargs)  # warm-up: PSF kernels are cached
    start = time.perf_counter()
    for _ in range(5):
        draw_lens(rng, **kwargs)
    per_lens = (time.perf_counter() - start) / 5
    assert per_lens < 0.1, per_lens
