"""The in-memory record every reader produces (STYLE.md §4: convert formats at the edge)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cutout:
    """One object's stamp.

    pixels: float32 (C, H, W), linear flux (nanomaggies for Legacy-Survey-like data); NaN only
    where the reader marks masked pixels. bands: names in the order of axis 0.
    """

    pixels: np.ndarray
    object_id: str
    ra_deg: float
    dec_deg: float
    pixel_scale_arcsec: float
    bands: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3:
            raise ValueError(f"cutout {self.object_id}: pixels must be (C, H, W), got {self.pixels.shape}")
        if self.pixels.shape[0] != len(self.bands):
            raise ValueError(
                f"cutout {self.object_id}: {self.pixels.shape[0]} planes but {len(self.bands)} bands"
            )
