"""Astronomy augmentations for MoCo v2 pretraining, batched on the images' device.

The two views of a galaxy that the contrastive loss pulls together should differ only in
what the survey itself varies and what carries no science: Galactic dust along the line of
sight, the seeing, the depth, the orientation on the sky and the exact centring. These are
the augmentations of Hayat et al. 2021 (ApJL 911 L33, arXiv:2012.13083) and Stein et al.
2021 (arXiv:2110.00023): de-redden / re-redden, flips + rotation, size rescale, PSF blur,
Gaussian noise and a jittered crop (DESIGN.md §4).

Every function works on a whole batch at once, on whatever device the input lives on, with
parameters drawn per sample from an explicit ``torch.Generator`` (never the global RNG), so a
training step is reproducible from its seed and two copies of one galaxy in a batch still
get different views. torchvision's v2 transforms draw one set of parameters per batch, and a
per-sample loop is too slow on the GPU; hence this module.

Input: linear flux (e.g. nanomaggies), float ``(N, C, H, W)``, before any normalisation
(that lives in ``encoder/preprocess.py`` and is applied to the output). NaN pixels are not
handled here: blur and resampling spread them, so fill masked pixels first.

Order (``augment``): redden -> blur -> one affine ``grid_sample`` (flip, rotation, scale,
shift and crop together, so the image is interpolated once) -> noise. Noise comes last so
that it stays white and per pixel; the earlier steps shrink the existing noise (reddening
scales it, blurring averages it), and ``augment`` tracks that so the added noise brings each
band to its drawn target depth.

    from training.augment import AugmentSettings, augment, extinction_coeffs
    g = torch.Generator(device=images.device).manual_seed(0)
    views = augment(images, ebv=ebv, psf_fwhm_arcsec=psf, noise_sigma=sigma,
                    coeffs=extinction_coeffs("grz"), pixel_scale_arcsec=0.262,
                    settings=AugmentSettings(), generator=g)

Extinction coefficients exist for the common filters (``EXTINCTION``: SDSS, DECam, HSC, LSST,
Euclid); ``extinction_coeffs`` raises ``UnknownBands`` for any other band, and training then runs
without the reddening augmentation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

# A_band / E(B-V) per photometric system, for E(B-V) on the SFD scale (the `ebv` catalogue column of
# the Legacy Surveys, SDSS, HSC), R_V = 3.1: the recipe of Schlafly & Finkbeiner 2011 (SF11, ApJ 737,
# 103) Table 6 (Fitzpatrick 1999 curve, a 7000 K source spectrum, SFD's E(B-V) rescaled by 0.86).
EXTINCTION: dict[str, dict[str, float]] = {
    # Legacy Surveys / DES: SF11 recomputed for the DECam passbands by E. Schlafly (2014), what the
    # Legacy Surveys use for MW_TRANSMISSION (legacypipe's SFDMap) and Stein et al.'s transmission
    # exponents (-0.4 * A/E). SF11's own Table 6 DES row is g 3.237, r 2.176, i 1.595, z 1.217, Y 1.058.
    # (DECam u, 3.995 there, is left out so that a plain ugriz survey reads as SDSS.)
    "decam": {"g": 3.214, "r": 2.165, "i": 1.592, "z": 1.211, "Y": 1.064},
    "sdss": {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263},  # SF11 Table 6
    # HSC-SSP: the LSST pipelines' obs_subaru config/extinctionCoeffs.py (M. Tanaka, NAOJ); SF11 has
    # no HSC row. Our own SF11-recipe calculation (Euclid note below) agrees within 1 %.
    "hsc": {"g": 3.240, "r": 2.276, "i": 1.633, "z": 1.263, "y": 1.075},
    # SF11 Table 6 (the LSST filter curves of 2011). rubin_sim's DustValues (4.76, 3.66, 2.70, 2.05,
    # 1.59, 1.31: CCM89, flat spectrum) are 13-20 % higher and not per SFD E(B-V): do not mix them in.
    "lsst": {"u": 4.145, "g": 3.237, "r": 2.273, "i": 1.684, "z": 1.323, "y": 1.088},
    # Euclid I_E (VIS), Y_E, J_E, H_E: no published SF11-style coefficient found, so computed here
    # (not a literature value): Fitzpatrick 1999 R_V = 3.1 through speclite's Euclid-VIS/Y/J/H
    # passbands for a 7000 K blackbody, times 0.884, the median ratio of SF11 Table 6 to the same
    # calculation over its SDSS, DES and LSST rows and the HSC row above (21 filters, ratios 0.874 to
    # 0.894, so about +-1 %). VIS is broad (550-900 nm), so its coefficient depends on the source:
    # 1.80 for a 5000 K and 1.92 for a 10000 K spectrum; Y/J/H move by < 1 %.
    "euclid": {"VIS": 1.87, "Y": 0.92, "J": 0.63, "H": 0.42},
}
# Other spellings of a system in a qualified band name ("des_g", "rubin-y", "HSC-I"); lower case.
SYSTEM_ALIASES: dict[str, str] = {
    "decam": "decam", "des": "decam", "decals": "decam", "ls": "decam", "legacy": "decam",
    "sdss": "sdss", "hsc": "hsc", "lsst": "lsst", "rubin": "lsst", "euclid": "euclid", "nisp": "euclid",
}
# Other names of a system's bands: Euclid's own I_E, Y_E, J_E, H_E.
BAND_ALIASES: dict[str, dict[str, str]] = {"euclid": {"I_E": "VIS", "IE": "VIS", "Y_E": "Y", "J_E": "J", "H_E": "H"}}
# Plain band names ("g", "VIS") are read as the first system in this order that has every plain band
# of the survey: grz, griz and grizY -> DECam (Legacy Surveys, DES), ugriz -> SDSS, grizy -> HSC,
# ugrizy -> LSST, VIS/Y/J/H -> Euclid. Exact case is tried first, then case-insensitive ("vis",
# "G,R,Z"); within one system no two bands differ only in case, so that is never ambiguous. Bands of
# mixed systems must be qualified: "decam_g", "euclid_VIS" (separator _, -, :, . or space).
PLAIN_NAME_ORDER: tuple[str, ...] = ("decam", "sdss", "hsc", "lsst", "euclid")
DECALS_EXTINCTION: dict[str, float] = EXTINCTION["decam"]
SDSS_EXTINCTION: dict[str, float] = EXTINCTION["sdss"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548
KERNEL_RADIUS_SIGMAS = 4.0  # a Gaussian kernel truncated at 4 sigma keeps 99.99 % of the flux


class AugmentSettings(BaseModel):
    """Strength of each augmentation; one field per knob, units in the names.

    Defaults follow Stein et al. 2021 scaled to a 64 px DECaLS cutout (0.262"/px): a 32 px
    crop (8.4") jittered by up to 3 px, scale U(0.9, 1.1), rotation U(0, 360) deg with a random
    flip, re-reddening to E(B-V) ~ U(0, 0.15), seeing drawn per band in U(1.0", 2.0") (DECaLS DR9
    psfsize spans roughly 0.9-2"), noise raised per band by U(1, 1.5) (up to 0.44 mag shallower).
    """

    model_config = ConfigDict(extra="forbid")

    crop_size_px: int = Field(32, ge=1)
    max_shift_px: float = Field(3.0, ge=0.0)  # crop centre moves by U(-s, s) in x and in y
    scale_min: float = Field(0.9, gt=0.0)  # zoom factor: > 1 magnifies the galaxy
    scale_max: float = Field(1.1, gt=0.0)
    rotate: bool = True  # U(0, 360) deg
    flip: bool = True  # x -> -x with p = 0.5; with rotation this gives every mirror image
    redden: bool = True
    # Re-redden with E(B-V) ~ U(0, ebv_max). Keep it to the dust a high-latitude survey sees
    # (DECaLS/SDSS fields: median ~0.03, almost all < 0.15): E(B-V) = 1 shifts g-r by ~1 mag,
    # more than the elliptical-to-irregular colour gap, and would teach the encoder to ignore colour.
    ebv_max: float = Field(0.15, ge=0.0)
    blur: bool = True
    fwhm_min_arcsec: float = Field(1.0, gt=0.0)  # target seeing per band ~ U(min, max)
    fwhm_max_arcsec: float = Field(2.0, gt=0.0)
    noise: bool = True
    noise_max_factor: float = Field(1.5, ge=1.0)  # target sigma = current * U(1, factor)
    # Photometric jitter (``photometric``), applied after ``augment`` in the units the encoder's
    # normalisation measures: a gain exp(N(0, band_gain_sigma)) per band and exp(N(0, gain_sigma))
    # for the whole image about the band's background level, then Gaussian noise of sigma
    # U(0, noise_floor) x the band's normalisation scale (display: the pixel spread; flux: the
    # background noise). Off by default; on the real SDSS JPEGs (docs/real_data.md, run G) 0.1 / 0.3
    # / 0.3 was the only recipe whose plain readout kept rising: a JPEG's stretch and depth vary from
    # cutout to cutout, and without it the encoder tells galaxies apart by brightness alone.
    band_gain_sigma: float = Field(0.0, ge=0.0)
    gain_sigma: float = Field(0.0, ge=0.0)
    noise_floor: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> AugmentSettings:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} > scale_max {self.scale_max}")
        if self.fwhm_min_arcsec > self.fwhm_max_arcsec:
            raise ValueError(
                f"fwhm_min_arcsec {self.fwhm_min_arcsec} > fwhm_max_arcsec {self.fwhm_max_arcsec}"
            )
        return self


def check_geometry(settings: AugmentSettings, input_size_px: int | tuple[int, int]) -> None:
    """Raise ValueError unless every crop the settings allow lies inside the input.

    Stein et al. rotate first and crop later, so a rotated, shrunk, shifted crop can pull
    zero-filled corners in; DESIGN.md §4 forbids that. Output pixel centres reach
    ``(crop - 1) / 2 / scale_min`` input px from the crop centre along an axis, times sqrt(2)
    at a 45 deg rotation, and the centre moves up to ``max_shift_px`` along each axis; bilinear
    sampling stays off the zero padding while that sum is at most ``(size - 1) / 2``, the
    distance from the centre to the last pixel centre. The bound is exact (reached at 45 deg and
    the largest shift), so it only rejects settings that can really zero-fill.
    """
    h, w = (input_size_px, input_size_px) if isinstance(input_size_px, int) else input_size_px
    half_crop = (settings.crop_size_px - 1) / 2 / settings.scale_min
    reach = half_crop * (math.sqrt(2.0) if settings.rotate else 1.0) + settings.max_shift_px
    room = (min(h, w) - 1) / 2
    if reach > room + 1e-9:
        raise ValueError(
            f"a {settings.crop_size_px} px crop with scale_min {settings.scale_min}, "
            f"max_shift_px {settings.max_shift_px} and rotate={settings.rotate} reaches "
            f"{reach:.2f} px from the centre of a {h}x{w} px input, whose last pixel centre is "
            f"{room:.2f} px away, so corners would be zero-filled: lower crop_size_px or "
            f"max_shift_px, or raise scale_min"
        )


def photometric(images: Tensor, offset: Sequence[float] | None, scale: Sequence[float],
                settings: AugmentSettings, generator: torch.Generator) -> Tensor:
    """Gain and noise-floor jitter (see AugmentSettings) of augmented views (N, C, H, W).

    ``offset`` and ``scale`` are the normalisation's per-band background level (None: 0, flux) and
    scale (``PreprocessConfig.band_offset`` / ``band_scale``), so the jitter is the same in every
    survey's units. Returns the input itself when every strength is 0 (and draws nothing).
    """
    s = settings
    if not (s.band_gain_sigma or s.gain_sigma or s.noise_floor):
        return images
    n, c = images.shape[:2]
    dev = images.device
    off = torch.tensor(offset if offset is not None else [0.0] * c, dtype=images.dtype, device=dev).view(1, c, 1, 1)
    out = images
    if s.band_gain_sigma or s.gain_sigma:
        log_gain = (s.band_gain_sigma * torch.randn(n, c, 1, 1, generator=generator, device=dev)
                    + s.gain_sigma * torch.randn(n, 1, 1, 1, generator=generator, device=dev))
        out = (out - off) * torch.exp(log_gain) + off
    if s.noise_floor:
        sc = torch.tensor(list(scale), dtype=images.dtype, device=dev).view(1, c, 1, 1)
        sigma = s.noise_floor * torch.rand(n, 1, 1, 1, generator=generator, device=dev) * sc
        out = out + sigma * torch.randn(out.shape, generator=generator, device=dev)
    return out


class UnknownBands(KeyError):
    """Bands with no known A_band / E(B-V): the reddening augmentation cannot be applied."""

    def __str__(self) -> str:  # KeyError's str() is the repr of its argument: show the message
        return str(self.args[0]) if self.args else ""


def _band_list(bands: Sequence[str] | str) -> list[str]:
    """A string is one letter per band ("grz") unless it holds commas ("VIS,Y,J,H")."""
    if isinstance(bands, str):
        return [b.strip() for b in bands.split(",")] if "," in bands else list(bands)
    return [str(b) for b in bands]


def _lookup(system: str, band: str, fold: bool) -> str | None:
    """The key of `band` in EXTINCTION[system] (through BAND_ALIASES), or None."""
    names = {**{k: k for k in EXTINCTION[system]}, **BAND_ALIASES.get(system, {})}
    if band in names:
        return names[band]
    if fold:
        hits = {v for k, v in names.items() if k.lower() == band.lower()}
        if len(hits) == 1:
            return hits.pop()
    return None


def _known() -> str:
    return "; ".join(f"{sys} {','.join(t)}" for sys, t in EXTINCTION.items())


def _plain_system(names: list[str]) -> tuple[str, list[str]] | None:
    """The first system of PLAIN_NAME_ORDER with every name (exact case, then folded), and the keys."""
    for fold in (False, True):
        for system in PLAIN_NAME_ORDER:
            keys = [_lookup(system, n, fold) for n in names]
            if all(k is not None for k in keys):
                return system, [k for k in keys if k is not None]
    return None


def resolve_bands(bands: Sequence[str] | str) -> list[tuple[str, str]]:
    """(system, band) of each band, e.g. ["g", "r", "z"] -> [("decam", "g"), ("decam", "r"), ...].

    A qualified name ("hsc_i", "LSST-y", "euclid_vis") names its system; the plain names are read
    together as the first system of PLAIN_NAME_ORDER that has all of them (exact case first, then
    case-insensitive). Raises UnknownBands naming the bands that cannot be resolved.
    """
    names = _band_list(bands)
    out: dict[int, tuple[str, str]] = {}
    unknown: list[str] = []
    plain: list[int] = []
    for i, name in enumerate(names):
        m = re.fullmatch(r"([A-Za-z0-9]+)[_\-:. ](.+)", name.strip())
        system = SYSTEM_ALIASES.get(m.group(1).lower()) if m else None
        if system is None:
            plain.append(i)
            continue
        key = _lookup(system, m.group(2), fold=True)
        if key is None:
            unknown.append(name)
        else:
            out[i] = (system, key)
    if plain:
        found = _plain_system([names[i] for i in plain])
        if found is not None:
            out.update({i: (found[0], k) for i, k in zip(plain, found[1], strict=True)})
        else:
            alone = [names[i] for i in plain if not any(_lookup(sys, names[i], True) for sys in EXTINCTION)]
            if not alone:
                raise UnknownBands(
                    f"no extinction coefficients for band(s) {[names[i] for i in plain]} together: each is "
                    f"known, but no one system has them all; qualify them with their system, e.g. "
                    f"'decam_g', 'euclid_VIS' (known: {_known()})"
                )
            unknown += alone
    if unknown:
        raise UnknownBands(f"no extinction coefficient for band(s) {unknown}; known: {_known()} "
                           "(qualify a band with its system, e.g. 'hsc_i', to pick one)")
    return [out[i] for i in range(len(names))]


def extinction_coeffs(bands: Sequence[str] | str, table: Mapping[str, float] | None = None) -> Tensor:
    """A_band / E(B-V) for ``bands`` (e.g. ``"grz"``, ``["VIS"]``, ``["hsc_i", "hsc_z"]``), float32 (C,).

    Without ``table`` the bands are resolved by ``resolve_bands`` (grz -> the Legacy Surveys' DECam
    values); with one (e.g. ``SDSS_EXTINCTION``) they are looked up in it as they are. Raises
    ``UnknownBands`` (a KeyError) for a band with no coefficient.
    """
    names = _band_list(bands)
    if table is None:
        return torch.tensor([EXTINCTION[sys][b] for sys, b in resolve_bands(names)], dtype=torch.float32)
    unknown = [b for b in names if b not in table]
    if unknown:
        raise UnknownBands(f"no extinction coefficient for band(s) {unknown}; known: {sorted(table)}")
    return torch.tensor([table[b] for b in names], dtype=torch.float32)


def extinction_factor(ebv: Tensor, coeffs: Tensor) -> Tensor:
    """Transmission 10^(-0.4 A) with A = coeffs * E(B-V): ebv (N,), coeffs (C,) -> (N, C)."""
    return torch.pow(10.0, -0.4 * coeffs[None, :] * ebv[:, None])


def redden(images: Tensor, ebv_from: Tensor, ebv_to: Tensor, coeffs: Tensor) -> Tensor:
    """Replace the dust column E(B-V) ``ebv_from`` (N,) by ``ebv_to`` (N,), per band.

    Hayat et al. 2021 show that dust otherwise leaks into the representation as a colour
    shift indistinguishable from redshift. The whole image, noise included, is scaled by
    T(ebv_to) / T(ebv_from) per band; images (N, C, H, W) flux, coeffs (C,) A_band / E(B-V).
    """
    factor = extinction_factor(ebv_to, coeffs) / extinction_factor(ebv_from, coeffs)  # (N, C)
    return images * factor.to(images.dtype)[:, :, None, None]


def blur_sigma_px(
    current_fwhm_arcsec: Tensor, target_fwhm_arcsec: Tensor, pixel_scale_arcsec: float
) -> Tensor:
    """Gaussian sigma (px) that takes a Gaussian PSF from the current to the target FWHM.

    Gaussians add in quadrature: sigma = sqrt(target^2 - current^2) / 2.3548 / pixel scale.
    Where the target is sharper than the current seeing nothing can be done: sigma = 0.
    """
    extra = (target_fwhm_arcsec.square() - current_fwhm_arcsec.square()).clamp_min(0.0).sqrt()
    return extra / FWHM_PER_SIGMA / pixel_scale_arcsec


def gaussian_kernel_1d(sigma_px: Tensor) -> Tensor:
    """Normalised 1-D Gaussians, sigma_px (...,) -> (..., 2r + 1), r = ceil(4 max sigma).

    One radius for the whole batch so all kernels stack; sigma 0 gives a delta (identity).
    """
    radius = math.ceil(KERNEL_RADIUS_SIGMAS * float(sigma_px.max())) if sigma_px.numel() else 0
    x = torch.arange(-radius, radius + 1, device=sigma_px.device, dtype=sigma_px.dtype)
    # clamp: sigma 0 -> exp(-x^2 / 2e-12) = 0 off centre and exp(0) = 1 at the centre
    kernel = torch.exp(-x.square() / (2.0 * sigma_px.clamp_min(1e-6)[..., None].square()))
    return kernel / kernel.sum(-1, keepdim=True)


def convolve_separable(images: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each (sample, band) plane with its own separable kernel; reflect padding.

    images (N, C, H, W); kernels (N, C, K) 1-D, odd K. The planes become the channels of one
    grouped conv (groups = N*C), run along x then y: 2K instead of K^2 multiplies per pixel.
    """
    n, c, h, w = images.shape
    radius = (kernels.shape[-1] - 1) // 2
    if radius == 0:
        return images
    if radius >= min(h, w):  # reflect padding needs pad < size
        raise ValueError(
            f"blur kernel radius {radius} px does not fit a {h}x{w} px image; "
            "lower fwhm_max_arcsec or use larger cutouts"
        )
    weight = kernels.reshape(n * c, 1, 1, -1).to(images.dtype)
    x = images.reshape(1, n * c, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), weight, groups=n * c)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = F.conv2d(x, weight.transpose(-1, -2), groups=n * c)
    return x.reshape(n, c, h, w)


def blur_to_seeing(
    images: Tensor,
    current_fwhm_arcsec: Tensor,
    target_fwhm_arcsec: Tensor,
    pixel_scale_arcsec: float,
) -> Tensor:
    """Degrade the seeing of each (sample, band) from current (N, C) to target (N, C) FWHM.

    Stein et al. 2021 blur so the model ignores the seeing, which varies across a survey and
    between bands. images (N, C, H, W) flux; FWHM in arcsec; total flux is preserved.
    """
    sigma = blur_sigma_px(current_fwhm_arcsec, target_fwhm_arcsec, pixel_scale_arcsec)
    return convolve_separable(images, gaussian_kernel_1d(sigma.to(images.device)))


def random_affine_crop(
    images: Tensor,
    *,
    angle_deg: Tensor,
    flip: Tensor,
    scale: Tensor,
    shift_px: Tensor,
    crop_size_px: int,
) -> Tensor:
    """Flip, rotate, zoom and crop every sample with one bilinear ``grid_sample``.

    Output pixel (i, j) at offset (u, v) from the crop centre samples the input at
    ``centre + shift + R(angle) @ Flip @ (u, v) / scale``. angle_deg (N,): 90 deg equals
    ``torch.rot90(x, 1, dims=(-2, -1))``; flip (N,) bool mirrors x; scale (N,) > 1 magnifies;
    shift_px (N, 2) moves the crop centre by (dx, dy) input px. Pixel values are sampled, not
    integrated, so surface brightness is kept and a source's summed flux in the output grows as
    scale^2 (a zoomed-in galaxy looks bigger, not fainter per pixel). Samples beyond the input
    read zero; ``check_geometry`` rules that out for drawn parameters. Bilinear sampling does
    not pre-filter, so shrinking (scale < 1) aliases a little: summed flux of a 2.5 px-sigma
    source is off by up to 1.4 % at scale 0.9, 0.4 % at 3.5 px. -> (N, C, crop, crop).
    """
    n, _, h, w = images.shape
    dev = images.device
    a = torch.deg2rad(angle_deg.to(dev, torch.float32))
    fx = 1.0 - 2.0 * flip.to(dev, torch.float32)  # -1 mirrors x
    cos, sin = torch.cos(a), torch.sin(a)
    s = scale.to(dev, torch.float32)
    # R @ diag(fx, 1) / s, (N, 2, 2)
    mat = torch.stack([cos * fx, -sin, sin * fx, cos], dim=-1).reshape(n, 2, 2) / s[:, None, None]
    offs = torch.arange(crop_size_px, device=dev, dtype=torch.float32) - (crop_size_px - 1) / 2
    vv, uu = torch.meshgrid(offs, offs, indexing="ij")
    uv = torch.stack([uu, vv], dim=-1).reshape(-1, 2)  # (P, 2), P = crop^2, (x, y)
    xy = torch.einsum("nij,pj->npi", mat, uv) + shift_px.to(dev, torch.float32)[:, None, :]
    xy = xy + torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev)  # input px coordinates
    # align_corners=False: pixel centre k sits at (2k + 1) / size - 1
    size = torch.tensor([w, h], device=dev, dtype=torch.float32)
    grid = ((2.0 * xy + 1.0) / size - 1.0).reshape(n, crop_size_px, crop_size_px, 2)
    return F.grid_sample(
        images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
    )


def _draw(
    shape: tuple[int, ...], generator: torch.Generator, device: torch.device, normal: bool = False
) -> Tensor:
    # torch draws only on the generator's own device: draw there and move. A CPU generator
    # with CUDA images therefore works but copies noise over PCIe; pass a generator created on
    # the images' device for speed (its stream differs from a CPU generator of the same seed).
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=generator, device=generator.device).to(device)


def add_noise_to_depth(
    images: Tensor, current_sigma: Tensor, target_sigma: Tensor, generator: torch.Generator
) -> Tensor:
    """Add white Gaussian noise that takes the per-pixel sky noise from current to target.

    Stein et al. 2021 make the model ignore depth differences across the survey. Variances
    add, so the extra noise has sigma sqrt(target^2 - current^2), none where target <= current.
    images (N, C, H, W) flux; current_sigma, target_sigma (N, C) in the same flux units.
    """
    extra = (target_sigma.square() - current_sigma.square()).clamp_min(0.0).sqrt()
    noise = _draw(tuple(images.shape), generator, images.device, normal=True)
    return images + (noise * extra.to(images.device)[:, :, None, None]).to(images.dtype)


@dataclass
class AugmentParams:
    """Per-sample parameters of one ``augment`` call; None = that augmentation is off."""

    ebv: Tensor | None  # (N,) new E(B-V)
    fwhm_arcsec: Tensor | None  # (N, C) target seeing
    angle_deg: Tensor  # (N,)
    flip: Tensor  # (N,) bool
    scale: Tensor  # (N,)
    shift_px: Tensor  # (N, 2) (dx, dy)
    noise_factor: Tensor | None  # (N, C) target sigma / current sigma


def sample_augment_params(
    n: int,
    n_bands: int,
    settings: AugmentSettings,
    generator: torch.Generator,
    device: torch.device,
) -> AugmentParams:
    """Draw every per-sample parameter from ``generator`` in a fixed order, on ``device``."""
    s = settings

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * _draw(shape, generator, device)

    return AugmentParams(
        ebv=uniform(0.0, s.ebv_max, n) if s.redden else None,
        fwhm_arcsec=uniform(s.fwhm_min_arcsec, s.fwhm_max_arcsec, n, n_bands) if s.blur else None,
        angle_deg=uniform(0.0, 360.0, n) if s.rotate else torch.zeros(n, device=device),
        flip=(_draw((n,), generator, device) < 0.5)
        if s.flip
        else torch.zeros(n, dtype=torch.bool, device=device),
        scale=uniform(s.scale_min, s.scale_max, n),
        shift_px=uniform(-s.max_shift_px, s.max_shift_px, n, 2),
        noise_factor=uniform(1.0, s.noise_max_factor, n, n_bands) if s.noise else None,
    )


def augment(
    images: Tensor,
    *,
    ebv: Tensor,
    psf_fwhm_arcsec: Tensor,
    noise_sigma: Tensor,
    coeffs: Tensor,
    pixel_scale_arcsec: float,
    settings: AugmentSettings,
    generator: torch.Generator,
    params: AugmentParams | None = None,
) -> Tensor:
    """One random view per sample: redden -> blur -> affine crop -> noise.

    images (N, C, H, W) linear flux; ebv (N,) catalogue E(B-V); psf_fwhm_arcsec (N, C) current
    seeing; noise_sigma (N, C) current per-pixel sky noise in flux units; coeffs (C,)
    A_band / E(B-V). Parameters are drawn from ``generator`` unless ``params`` are given.
    Returns (N, C, crop, crop) on the images' device; N = 0 gives an empty batch.

    The sky noise already in the image is scaled by the reddening factor and averaged down by
    the blur kernel (by sqrt(sum k^2)); the added noise reaches ``noise_sigma * noise_factor``
    from that reduced level, so every view is at least as noisy as the original survey. The
    smaller loss from bilinear resampling (<= 2x at half-pixel offsets) is not tracked.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, C, H, W), got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    check_geometry(settings, (h, w))
    for name, t, shape in [
        ("ebv", ebv, (n,)),
        ("psf_fwhm_arcsec", psf_fwhm_arcsec, (n, c)),
        ("noise_sigma", noise_sigma, (n, c)),
        ("coeffs", coeffs, (c,)),
    ]:
        if tuple(t.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} for images {tuple(images.shape)}, "
                f"got {tuple(t.shape)}"
            )
    crop = settings.crop_size_px
    if n == 0:
        return images.new_empty((0, c, crop, crop))
    dev = images.device
    ebv, psf, sigma, coeffs = (
        t.to(dev, torch.float32) for t in (ebv, psf_fwhm_arcsec, noise_sigma, coeffs)
    )
    p = params if params is not None else sample_augment_params(n, c, settings, generator, dev)

    current_sigma = sigma
    if p.ebv is not None:
        images = redden(images, ebv, p.ebv, coeffs)
        current_sigma = (
            current_sigma * extinction_factor(p.ebv, coeffs) / extinction_factor(ebv, coeffs)
        )
    if p.fwhm_arcsec is not None:
        kernels = gaussian_kernel_1d(blur_sigma_px(psf, p.fwhm_arcsec, pixel_scale_arcsec))
        images = convolve_separable(images, kernels)
        current_sigma = current_sigma * kernels.square().sum(-1)  # (sqrt(sum k1^2))^2, 2-D
    images = random_affine_crop(
        images,
        angle_deg=p.angle_deg,
        flip=p.flip,
        scale=p.scale,
        shift_px=p.shift_px,
        crop_size_px=crop,
    )
    if p.noise_factor is not None:
        images = add_noise_to_depth(images, current_sigma, sigma * p.noise_factor, generator)
    return images
