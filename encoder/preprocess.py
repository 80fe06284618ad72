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

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

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


def preprocess(x: torch.Tensor | np.ndarray, cfg: PreprocessConfig, crop: bool = True) -> torch.Tensor:
    """Linear flux (N, C, H, W) -> network input (N, C, S, S) float32 on x's device.

    crop=False keeps the spatial size (training crops earlier, in the augmentations).
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
    scale = torch.tensor(cfg.band_scale, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    x = x.float()
    if cfg.band_offset is not None:
        x = x - torch.tensor(cfg.band_offset, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    y = torch.asinh(x / scale) / cfg.output_divisor if cfg.kind == "flux" else x / scale
    return torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)


def check_finite(x: np.ndarray, what: str) -> None:
    """Refuse an all-NaN or non-finite-everywhere cutout: there is nothing to embed."""
    if x.size == 0:
        raise IncompatibleInput(f"{what}: empty image (0 pixels)")
    if not np.isfinite(x).any():
        raise IncompatibleInput(f"{what}: every pixel is NaN or infinite")
