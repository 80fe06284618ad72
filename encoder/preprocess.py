"""Pixel preprocessing: the one place normalisation lives (training, indexing, service all call it).

Survey pixels are linear flux with a huge dynamic range (sky noise ~0.01 nmgy, galaxy cores
~10 nmgy). An arcsinh stretch per band, scaled by a typical per-band noise level, is linear near
the noise and logarithmic in bright cores (Lupton et al. 1999), so faint arms and bright bulges
both reach the network. NaN pixels (masked) become 0 after the stretch, i.e. "sky".
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from .errors import IncompatibleInput


class PreprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    input_size_px: int
    band_scale: tuple[float, ...]  # flux (same unit as pixels) where the stretch turns logarithmic
    output_divisor: float = 3.0  # brings stretched values to roughly unit variance

    def model_post_init(self, __context: object) -> None:
        if len(self.band_scale) != len(self.bands):
            raise ValueError("band_scale needs one value per band")


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
    y = torch.asinh(x.float() / scale) / cfg.output_divisor
    return torch.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)


def check_finite(x: np.ndarray, what: str) -> None:
    """Refuse an all-NaN or non-finite-everywhere cutout: there is nothing to embed."""
    if x.size == 0:
        raise IncompatibleInput(f"{what}: empty image (0 pixels)")
    if not np.isfinite(x).any():
        raise IncompatibleInput(f"{what}: every pixel is NaN or infinite")
