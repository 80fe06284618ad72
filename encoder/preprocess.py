"""Pixel preprocessing: the one place normalisation lives (training, indexing, service all call it).

The normalisation is defined on the survey's recorded units (survey.units), never on constants:

- flux (nanomaggies, nJy, ADU, ...): pixels have a huge dynamic range (sky noise ~0.01 nmgy,
  galaxy cores ~10 nmgy). An arcsinh stretch per band in units of the band's measured background
  noise is linear near the noise and logarithmic in bright cores (Lupton et al. 1999), so faint
  arms and bright bulges both reach the network, whatever the unit's scale.
- display (0-1 or 0-255 values of a PNG/JPEG that already carry a stretch): no second stretch;
  the band's background level is subtracted and the result divided by the band's spread.

`band_scale` / `band_offset` in a model card are the training survey's; `for_survey` swaps in
those of the survey being encoded (same kind of units, or a named refusal). NaN pixels (masked)
become 0 after normalisation, i.e. "sky".
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from survey.units import Kind, SurveyUnits

from .errors import IncompatibleInput


class PreprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    input_size_px: int
    # flux: the noise (in the pixels' unit) where the stretch turns logarithmic; display: the spread
    band_scale: tuple[float, ...]
    output_divisor: float = 3.0  # brings stretched flux to roughly unit variance (flux only)
    kind: Kind = "flux"
    band_offset: tuple[float, ...] | None = None  # subtracted first (display: the background level)
    units: tuple[str, ...] | None = None  # the training survey's unit names, for the card's reader
    # Turn each normalised crop so its light's major axis lies along x (sky where the turn uncovers
    # corners); set from the card's readout ("aligned4"), never on its own (encoder.card.ModelCard).
    align: bool = False
    # Gaussian smoothing (sigma, in the encoder's pixels) of the linear pixels after the crop: a
    # matched filter that keeps what the PSF resolves and suppresses pixel noise, so two exposures
    # of one object at different depths embed closer (docs/training.md, "Readout"). 0: off.
    smooth_px: float = Field(0.0, ge=0.0, le=8.0)

    def model_post_init(self, __context: object) -> None:
        if len(self.band_scale) != len(self.bands):
            raise ValueError("band_scale needs one value per band")
        if self.band_offset is not None and len(self.band_offset) != len(self.bands):
            raise ValueError("band_offset needs one value per band")


def for_survey(cfg: PreprocessConfig, units: SurveyUnits | None) -> PreprocessConfig:
    """The card's preprocessing with the levels of the survey being encoded.

    Refuses (IncompatibleInput) a survey whose kind of units differs from the training survey's
    (an encoder trained on display images has never seen linear flux, and the reverse), or whose
    band count differs, or a band without a measurable level. None: the card's own levels.
    """
    if units is None:
        return cfg
    if len(units.bands) != len(cfg.bands):
        raise IncompatibleInput(f"the survey has {len(units.bands)} band(s) ({','.join(units.bands)}) but the "
                                f"encoder takes {len(cfg.bands)} ({','.join(cfg.bands)})")
    if units.kind != cfg.kind:
        raise IncompatibleInput(
            f"the encoder was trained on {cfg.kind} images but this survey holds {units.kind} values "
            f"({units.names}); train an encoder on it (skysift train --survey ...) or ingest it with "
            f"the right --units")
    if units.kind == "flux":
        scale = tuple(b.noise for b in units.per_band)
        offset = None
    else:
        scale = tuple(b.spread for b in units.per_band)
        offset = tuple(b.background for b in units.per_band)
    bad = [b for b, v in zip(units.bands, scale, strict=True) if not (np.isfinite(v) and v > 0)]
    if bad:
        what = "background noise" if units.kind == "flux" else "pixel spread"
        raise IncompatibleInput(f"band(s) {','.join(bad)} of the survey have no measurable {what} (0: constant, "
                                f"noiseless or clipped images), so they cannot be normalised")
    return cfg.model_copy(update={"band_scale": scale, "band_offset": offset})


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size) around the centre; refuses smaller inputs."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise IncompatibleInput(f"cutout is {h}x{w} px but the model needs at least {size}x{size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def _normalise(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    scale = torch.tensor(cfg.band_scale, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    x = x.float()
    if cfg.band_offset is not None:
        x = x - torch.tensor(cfg.band_offset, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    y = torch.asinh(x / scale) / cfg.output_divisor if cfg.kind == "flux" else x / scale
    return torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)


def _sky_filled(x: torch.Tensor, cfg: PreprocessConfig) -> torch.Tensor:
    """Masked (NaN/inf) pixels set to the sky level (the band offset, or 0 for flux), so that no
    filter spreads them over their neighbours."""
    fill = torch.zeros(x.shape[1], device=x.device) if cfg.band_offset is None else \
        torch.tensor(cfg.band_offset, dtype=torch.float32, device=x.device)
    return torch.where(torch.isfinite(x), x.float(), fill.view(1, -1, 1, 1))


def smooth(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """(N, C, H, W) convolved with a normalised Gaussian of `sigma_px` (separable, radius 3 sigma,
    edges reflected), band by band; flux is conserved."""
    r = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).expand(x.shape[1], 1, 1, -1).contiguous()
    pad = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < r:  # a stamp smaller than the kernel: reflect what there is, zero beyond
        y = F.pad(F.pad(x, (pad, pad, pad, pad), mode="reflect"), (r - pad,) * 4)
    else:
        y = F.pad(x, (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k, groups=x.shape[1])
    return F.conv2d(y, k.transpose(-1, -2), groups=x.shape[1])


def major_axis_angle(z: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) normalised pixels -> (N,) position angle (radians, from +x towards +row) of the
    major axis of the second moments of the positive light, summed over bands and weighted by a
    Gaussian window of sigma S/4 about the centre (so neighbours near the edge count little).
    A round or empty stamp gets whatever angle its noise gives (0 when there is no light)."""
    s = z.shape[-1]
    c = torch.arange(s, dtype=torch.float32, device=z.device) - (s - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    w = z.float().clamp(min=0).sum(1) * torch.exp(-(xx**2 + yy**2) / (2 * (s / 4) ** 2))
    m = w.sum((1, 2)).clamp(min=1e-12)
    dx = xx - ((w * xx).sum((1, 2)) / m)[:, None, None]
    dy = yy - ((w * yy).sum((1, 2)) / m)[:, None, None]
    qxx, qyy, qxy = (w * dx * dx).sum((1, 2)), (w * dy * dy).sum((1, 2)), (w * dx * dy).sum((1, 2))
    return torch.nan_to_num(0.5 * torch.atan2(2 * qxy, qxx - qyy))


def align_major_axis(z: torch.Tensor) -> torch.Tensor:
    """Turn each normalised crop (N, C, S, S) about its centre so the major axis of its central
    light lies along x (bilinear). What comes from outside the crop is sky (0), whatever the stamp
    held there, so a 32 px copy and a 64 px stamp of one object reach the network alike: the corners
    a turn uncovers are sky for both. A turned copy then reaches the network turned back, up to the
    half-turn and mirror images that the "aligned4" readout averages over: the arbitrary-angle
    invariance the dihedral readout gives only for right angles, at half its passes."""
    theta = major_axis_angle(z)
    c, s = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(c)
    # output (X, Y) in [-1, 1] samples the input at the offset turned by theta
    a = torch.stack([torch.stack([c, -s, zero], 1), torch.stack([s, c, zero], 1)], 1)
    grid = F.affine_grid(a, list(z.shape), align_corners=False)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def preprocess(x: torch.Tensor | np.ndarray, cfg: PreprocessConfig, crop: bool = True) -> torch.Tensor:
    """Linear flux (N, C, H, W) -> network input (N, C, S, S) float32 on x's device.

    crop=False keeps the spatial size (training crops earlier, in the augmentations) and never
    aligns; crop=True aligns the normalised crop last when the card's readout asks for it. Smoothing
    (cfg.smooth_px) comes after the crop on both paths, so training and search see the same filter.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if x.ndim != 4:
        raise IncompatibleInput(f"expected (N, C, H, W) pixels, got shape {tuple(x.shape)}")
    if x.shape[1] != len(cfg.bands):
        raise IncompatibleInput(
            f"cutout has {x.shape[1]} band(s) but the model takes {len(cfg.bands)} ({','.join(cfg.bands)})"
        )
    if crop:
        x = center_crop(x, cfg.input_size_px)
    if cfg.smooth_px > 0:
        x = smooth(_sky_filled(x, cfg), cfg.smooth_px)
    z = _normalise(x, cfg)
    return align_major_axis(z) if crop and cfg.align else z


def check_finite(x: np.ndarray, what: str) -> None:
    """Refuse an all-NaN or non-finite-everywhere cutout: there is nothing to embed."""
    if x.size == 0:
        raise IncompatibleInput(f"{what}: empty image (0 pixels)")
    if not np.isfinite(x).any():
        raise IncompatibleInput(f"{what}: every pixel is NaN or infinite")
