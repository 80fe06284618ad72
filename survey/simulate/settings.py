"""SimSettings: everything that determines a simulated survey (saved as simulation.json next to the shards)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PRESETS: dict[str, int] = {"tiny": 240, "demo": 6000, "bench": 100_000}


class SimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYSIFT_SIM_", extra="forbid")

    out_dir: Path = Path("data/sim")
    preset: Literal["tiny", "demo", "bench"] = "demo"
    n_objects: int | None = None  # None -> the preset's size
    seed: int = 0
    bands: tuple[str, ...] = ("g", "r", "z")
    size_px: int = 64
    pixel_scale_arcsec: float = 0.262
    shard_size: int = Field(default=1024, ge=1)
    workers: int = Field(max(1, os.cpu_count() or 1), ge=1)  # processes
    mag_limit_r: float = 19.5  # bright, BGS-like sample: morphology resolved at 0.262"/px
    z_min: float = 0.02
    z_max: float = 1.0
    lens_fraction: float = 0.004
    artifact_fraction: float = 0.008
    ra_min_deg: float = 150.0
    ra_max_deg: float = 160.0
    dec_min_deg: float = 0.0
    dec_max_deg: float = 5.0
    survey_name: str = "skysift-sim"

    @model_validator(mode="after")
    def _check(self) -> SimSettings:
        if self.n_objects is None:
            self.n_objects = PRESETS[self.preset]
        if self.n_objects < 1:
            raise ValueError("n_objects must be >= 1")
        if not (0 <= self.lens_fraction + self.artifact_fraction < 0.5):
            raise ValueError("lens_fraction + artifact_fraction must be in [0, 0.5)")
        if not (0 < self.z_min < self.z_max):
            raise ValueError("need 0 < z_min < z_max")
        if not (0 <= self.ra_min_deg < self.ra_max_deg <= 360 and -90 <= self.dec_min_deg < self.dec_max_deg <= 90):
            raise ValueError("footprint must satisfy 0 <= ra_min < ra_max <= 360, -90 <= dec_min < dec_max <= 90")
        return self

    @property
    def size(self) -> int:
        assert self.n_objects is not None
        return self.n_objects
