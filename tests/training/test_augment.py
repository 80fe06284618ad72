"""Behaviour of the batched astronomy augmentations (tiny CPU tensors, seconds)."""

import math

import pytest
import torch
from pydantic import ValidationError

from training.augment import (
    DECALS_EXTINCTION,
    SDSS_EXTINCTION,
    AugmentSettings,
    add_noise_to_depth,
    augment,
    blur_to_seeing,
    check_geometry,
    extinction_coeffs,
    extinction_factor,
    random_affine_crop,
    redden,
    sample_augment_params,
)

PIXEL_SCALE = 0.262


def gaussian_source(n: int, c: int, size: int, sigma_px: float, flux: float = 100.0):
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = (size - 1) / 2
    img = torch.exp(-((x - centre) ** 2 + (y - centre) ** 2) / (2 * sigma_px**2))
    img = flux * img / img.sum()
    return img.expand(n, c, size, size).clone().float()


def fwhm_px(images):
    """FWHM per (sample, band) from the flux-weighted second moments of a round source."""
    _, _, h, w = images.shape
    y, x = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    tot = images.sum((-2, -1))
    xc = (images * x).sum((-2, -1)) / tot
    yc = (images * y).sum((-2, -1)) / tot
    var_x = (images * (x - xc[..., None, None]) ** 2).sum((-2, -1)) / tot
    var_y = (images * (y - yc[..., None, None]) ** 2).sum((-2, -1)) / tot
    return 2.3548 * torch.sqrt((var_x + var_y) / 2)


def inputs(n: int, c: int = 3, size: int = 64):
    return dict(
        ebv=torch.full((n,), 0.05),
        psf_fwhm_arcsec=torch.full((n, c), 1.2),
        noise_sigma=torch.full((n, c), 0.01),
        coeffs=extinction_coeffs("grz"),
        pixel_scale_arcsec=PIXEL_SCALE,
    )


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_extinction_coeffs_lookup_and_unknown_band():
    assert extinction_coeffs("grz").tolist() == pytest.approx([3.214, 2.165, 1.211])
    sdss = extinction_coeffs(["u", "i"], SDSS_EXTINCTION)
    assert sdss.tolist() == pytest.approx([4.239, 1.698])
    with pytest.raises(KeyError, match="'u'"):
        extinction_coeffs("gu", DECALS_EXTINCTION)


def test_redden_multiplies_each_band_by_expected_factor():
    coeffs = extinction_coeffs("grz")
    images = torch.rand(2, 3, 4, 4) + 0.5
    ebv_from, ebv_to = torch.tensor([0.1, 0.0]), torch.tensor([0.6, 0.3])
    out = redden(images, ebv_from, ebv_to, coeffs)
    for i in range(2):
        for b in range(3):
            expected = 10 ** (-0.4 * coeffs[b].item() * (ebv_to[i] - ebv_from[i]).item())
            torch.testing.assert_close(out[i, b], images[i, b] * expected, rtol=1e-6, atol=0)
    # de-redden then re-redden to the same E(B-V) is the identity
    torch.testing.assert_close(redden(images, ebv_from, ebv_from, coeffs), images)
    assert extinction_factor(torch.zeros(2), coeffs).eq(1).all()


def test_blur_reaches_target_fwhm():
    sigma0 = 1.5  # px, FWHM 0.93"
    images = gaussian_source(2, 3, 48, sigma0)
    current = torch.full((2, 3), 2.3548 * sigma0 * PIXEL_SCALE)
    target = torch.tensor([[1.2, 1.6, 2.0], [0.5, 1.0, 1.8]])  # 0.5" < current: no blur
    out = blur_to_seeing(images, current, target, PIXEL_SCALE)
    expected_px = torch.maximum(target, current) / PIXEL_SCALE
    torch.testing.assert_close(fwhm_px(out), expected_px, rtol=0.05, atol=0)
    torch.testing.assert_close(out[1, 0], images[1, 0])  # sigma 0 -> identity
    torch.testing.assert_close(out.sum((-2, -1)), images.sum((-2, -1)), rtol=1e-4, atol=0)


def test_noise_reaches_target_depth():
    current, target = torch.tensor([[0.5, 1.0], [2.0, 0.1]]), torch.tensor([[1.0, 1.5], [1.0, 0.3]])
    blank = torch.randn(2, 2, 96, 96, generator=gen(1)) * current[..., None, None]
    out = add_noise_to_depth(blank, current, target, gen(2))
    expected = torch.maximum(target, current)  # never less noisy than before
    torch.testing.assert_close(out.std((-2, -1)), expected, rtol=0.05, atol=0)


def test_rotation_by_90_degrees_is_rot90_and_flip_mirrors():
    images = torch.rand(2, 3, 8, 8)
    zeros, ones = torch.zeros(2), torch.ones(2)
    kw = dict(scale=ones, shift_px=torch.zeros(2, 2), crop_size_px=8)
    rot = random_affine_crop(images, angle_deg=torch.full((2,), 90.0), flip=zeros.bool(), **kw)
    torch.testing.assert_close(rot, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    flipped = random_affine_crop(images, angle_deg=zeros, flip=ones.bool(), **kw)
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-6, rtol=0)


def test_shift_moves_crop_centre():
    images = torch.rand(1, 1, 12, 12)
    out = random_affine_crop(
        images,
        angle_deg=torch.zeros(1),
        flip=torch.zeros(1).bool(),
        scale=torch.ones(1),
        shift_px=torch.tensor([[2.0, -1.0]]),
        crop_size_px=6,
    )
    # centre (5.5, 5.5) + (2, -1): columns 5..10, rows 2..7
    torch.testing.assert_close(out[0, 0], images[0, 0, 2:8, 5:11], atol=1e-6, rtol=0)


def test_rotation_preserves_flux_and_scale_keeps_surface_brightness():
    images = gaussian_source(5, 2, 64, 3.5)  # well sampled: minifying aliases less
    angles = torch.tensor([90.0, 17.0, 133.0, 222.0, 301.0])
    kw = dict(
        flip=torch.tensor([0, 1, 0, 1, 0]).bool(), shift_px=torch.zeros(5, 2), crop_size_px=40
    )
    out = random_affine_crop(images, angle_deg=angles, scale=torch.ones(5), **kw)
    torch.testing.assert_close(out.sum((-2, -1)), images.sum((-2, -1)), rtol=0.01, atol=0)
    # documented choice: values are sampled, so summed flux grows as scale^2
    scale = torch.tensor([0.9, 1.0, 1.1, 0.95, 1.05])
    out = random_affine_crop(images, angle_deg=angles, scale=scale, **kw)
    torch.testing.assert_close(
        out.sum((-2, -1)), images.sum((-2, -1)) * scale[:, None] ** 2, rtol=0.01, atol=0
    )
    torch.testing.assert_close(out.amax((-2, -1)), images.amax((-2, -1)), rtol=0.02, atol=0)


def test_no_zero_filled_corners_under_random_params():
    s = AugmentSettings(redden=False, noise=False)  # blur with reflect padding keeps 1s
    ones = torch.ones(64, 3, 64, 64)
    out = augment(ones, **inputs(64), settings=s, generator=gen(0))
    assert out.shape == (64, 3, 32, 32)
    torch.testing.assert_close(out, torch.ones_like(out), atol=1e-5, rtol=0)


def test_extreme_allowed_geometry_has_no_zero_corners():
    # the tightest settings check_geometry accepts for 64 px, at 45 deg and the largest shift
    s = AugmentSettings(crop_size_px=33, scale_min=0.8, max_shift_px=31.5 - 16 * math.sqrt(2) / 0.8)
    check_geometry(s, 64)
    out = random_affine_crop(
        torch.ones(4, 1, 64, 64),
        angle_deg=torch.full((4,), 45.0),
        flip=torch.zeros(4).bool(),
        scale=torch.full((4,), 0.8),
        shift_px=torch.tensor([[1, 1], [-1, 1], [1, -1], [-1, -1]]) * s.max_shift_px,
        crop_size_px=33,
    )
    assert out.min() > 1 - 1e-4


def test_seeded_generator_is_reproducible():
    images = torch.rand(4, 3, 64, 64)
    a = augment(images, **inputs(4), settings=AugmentSettings(), generator=gen(7))
    b = augment(images, **inputs(4), settings=AugmentSettings(), generator=gen(7))
    c = augment(images, **inputs(4), settings=AugmentSettings(), generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_parameters_differ_per_sample():
    images = torch.rand(1, 3, 64, 64).expand(2, 3, 64, 64).clone()
    for s in [AugmentSettings(), AugmentSettings(redden=False, blur=False, noise=False)]:
        out = augment(images, **inputs(2), settings=s, generator=gen(3))
        assert (out[0] - out[1]).abs().max() > 1e-3
    p = sample_augment_params(16, 3, AugmentSettings(), gen(0), torch.device("cpu"))
    for t in [p.ebv, p.fwhm_arcsec, p.angle_deg, p.scale, p.shift_px, p.noise_factor]:
        assert t.unique().numel() == t.numel()
    assert 0 < p.flip.sum() < 16


def test_augment_noise_reaches_target_after_redden_and_blur():
    s = AugmentSettings(
        rotate=False,
        flip=False,
        scale_min=1.0,
        scale_max=1.0,
        max_shift_px=0.0,
        crop_size_px=96,
        fwhm_min_arcsec=1.5,
        fwhm_max_arcsec=2.0,
    )
    args = inputs(2, size=96) | {"ebv": torch.zeros(2)}  # re-reddening only dims the old noise
    sigma = args["noise_sigma"]
    blank = torch.randn(2, 3, 96, 96, generator=gen(5)) * sigma[..., None, None]
    params = sample_augment_params(2, 3, s, gen(6), torch.device("cpu"))
    out = augment(blank, **args, settings=s, generator=gen(6), params=params)
    expected = sigma * params.noise_factor  # the drawn target depth
    torch.testing.assert_close(out.std((-2, -1)), expected, rtol=0.05, atol=0)


def test_check_geometry():
    check_geometry(AugmentSettings(), 64)  # defaults fit a 64 px cutout
    with pytest.raises(ValueError, match="zero-filled"):
        check_geometry(AugmentSettings(), 40)
    with pytest.raises(ValueError, match="zero-filled"):  # Stein et al.'s 152 -> 96, +-7 px
        check_geometry(AugmentSettings(crop_size_px=96, max_shift_px=7.0), 152)
    check_geometry(AugmentSettings(crop_size_px=88, max_shift_px=7.0), 152)
    with pytest.raises(ValueError, match="zero-filled"):
        augment(torch.ones(1, 3, 32, 32), **inputs(1), settings=AugmentSettings(), generator=gen(0))


def test_settings_validation():
    with pytest.raises(ValidationError):
        AugmentSettings(scale_min=1.2, scale_max=1.1)
    with pytest.raises(ValidationError):
        AugmentSettings(crop_sise_px=32)  # extra="forbid" catches typos


def test_empty_batch():
    out = augment(
        torch.ones(0, 3, 64, 64), **inputs(0), settings=AugmentSettings(), generator=gen(0)
    )
    assert out.shape == (0, 3, 32, 32)


def test_shape_mismatch_is_named():
    args = inputs(2) | {"psf_fwhm_arcsec": torch.ones(2)}
    with pytest.raises(ValueError, match="psf_fwhm_arcsec"):
        augment(torch.ones(2, 3, 64, 64), **args, settings=AugmentSettings(), generator=gen(0))


def test_photometric_jitter_is_off_by_default_and_draws_nothing():
    from training.augment import photometric

    x = torch.rand(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert photometric(x, None, [1.0, 1.0, 1.0], AugmentSettings(), g) is x
    assert torch.equal(g.get_state(), state)


def test_photometric_gain_scales_each_band_about_its_background_level():
    from training.augment import photometric

    offset = [0.2, 0.3, 0.4]
    x = torch.tensor(offset).view(1, 3, 1, 1) + 0.5 + torch.rand(64, 3, 8, 8)
    s = AugmentSettings(band_gain_sigma=0.1, gain_sigma=0.3)
    y = photometric(x, offset, [1.0, 1.0, 1.0], s, torch.Generator().manual_seed(1))
    off = torch.tensor(offset).view(1, 3, 1, 1)
    ratio = (y - off) / (x - off)  # one gain per (object, band), the same at every pixel
    gain = ratio[..., :1, :1]
    assert torch.allclose(ratio, gain.expand_as(ratio), rtol=1e-4)
    log_gain = gain.log().flatten(1)
    # overall gain sigma 0.3 shared by the bands, per-band sigma 0.1 on top
    assert 0.2 < log_gain.mean(1).std() < 0.4
    assert 0.05 < (log_gain - log_gain.mean(1, keepdim=True)).std() < 0.15
    # a background pixel stays at the background level
    assert torch.allclose(photometric(off.expand(2, 3, 4, 4), offset, [1.0] * 3, s, torch.Generator()), off)


def test_photometric_noise_floor_is_in_units_of_the_band_scale():
    from training.augment import photometric

    scale = [0.01, 1.0, 100.0]
    x = torch.zeros(2000, 3, 4, 4)
    y = photometric(x, None, scale, AugmentSettings(noise_floor=0.3), torch.Generator().manual_seed(2))
    # sigma = U(0, 0.3) x scale per object, so the rms over objects is 0.3 / sqrt(3) x scale
    rms = y.pow(2).mean(dim=(0, 2, 3)).sqrt()
    assert torch.allclose(rms / torch.tensor(scale), torch.full((3,), 0.3 / math.sqrt(3)), rtol=0.08)
    with pytest.raises(ValidationError):
        AugmentSettings(noise_floor=-0.1)
