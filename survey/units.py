"""Units are data: what a survey's pixel values mean, per band, recorded in every shard.

Preprocessing must never guess the units. A survey of nanomaggies, one in 1e-12 erg/s/cm^2/Hz
and one of 0-255 display values need different handling, and a constant calibrated on one of
them turns another into a single point (an arcsinh softening of 0.01 makes 0-1 display values
saturate everywhere; 1e-12 fluxes become zeros). So ingest records, per band:

- ``units``: a flux unit ("nanomaggies", "nJy", "uJy", "ADU", "e-/s", or any other linear
  flux unit's name) or a display scale ("display" for 0-1, "display255" for 0-255: values that
  already carry a stretch, as PNG/JPEG do);
- ``zero_point``: the AB magnitude of one unit where known (22.5 for nanomaggies, 31.4 for nJy);
- ``noise``: the measured background noise, a sigma-clipped 1.4826 x MAD of the stamps' outer
  ring (the object sits in the centre), median over stamps;
- ``background``: the median of that ring (0 for sky-subtracted flux, the sky level for ADU or
  display images);
- ``spread``: the standard deviation of all pixel values, the scale of a display image.

The encoder's normalisation is defined on these (encoder.preprocess.for_survey): arcsinh in
units of the noise for flux, background-subtracted and divided by the spread for display values.
Both are free of the unit's scale, so a nanomaggy survey and the same survey times 1e-12 give the
same network input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from .errors import SurveyError

Kind = Literal["flux", "display"]
DISPLAY_UNITS = {"display": 1.0, "display255": 255.0}  # name -> the value of full white
ZERO_POINTS = {"nanomaggies": 22.5, "nmgy": 22.5, "njy": 31.4, "ujy": 23.9}  # AB mag of one unit
RING_PX = 4  # width of the outer ring that measures the background
MAX_SAMPLE = 512  # stamps measured per survey (spread evenly over it)


class UnitsError(SurveyError):
    """Units that cannot be used: unknown display scale, mixed flux and display bands, a bad list."""


class BandUnits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    units: str
    zero_point: float | None = None
    noise: float
    background: float
    spread: float

    @property
    def kind(self) -> Kind:
        return "display" if self.units.lower() in DISPLAY_UNITS else "flux"


class SurveyUnits(BaseModel):
    """Per-band units and measured levels, in the survey's band order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bands: tuple[str, ...]
    per_band: tuple[BandUnits, ...]
    # For display images: which bands the source image's red, green, blue showed (in that order),
    # so that a rendering or an uploaded PNG maps channels the way ingest did.
    rgb: tuple[str, ...] | None = None

    def model_post_init(self, __context: object) -> None:
        if len(self.per_band) != len(self.bands):
            raise UnitsError(f"{len(self.per_band)} band unit record(s) for {len(self.bands)} bands")
        kinds = {b.kind for b in self.per_band}
        if len(kinds) > 1:
            raise UnitsError(f"bands mix flux and display units ({self.names}); a survey is one or the other")

    @property
    def kind(self) -> Kind:
        return self.per_band[0].kind

    @property
    def names(self) -> str:
        return ",".join(f"{b}:{u.units}" for b, u in zip(self.bands, self.per_band, strict=True))

    def band(self, name: str) -> BandUnits:
        return self.per_band[self.bands.index(name)]

    def to_attr(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    @classmethod
    def from_attr(cls, text: str) -> SurveyUnits:
        return cls.model_validate_json(text)


def parse_units(text: str | None, n_bands: int, default: str) -> tuple[str, ...]:
    """'nanomaggies' -> that unit for every band; 'nJy,nJy,ADU' -> one per band."""
    if text is None or not text.strip():
        return (default,) * n_bands
    names = tuple(t.strip() for t in text.split(","))
    if any(not n for n in names):
        raise UnitsError(f"units {text!r} has an empty name; pass --units NAME or one name per band")
    if len(names) == 1:
        return names * n_bands
    if len(names) != n_bands:
        raise UnitsError(f"units {text!r} names {len(names)} unit(s) for {n_bands} band(s); "
                         "pass one for all or one per band")
    return names


def zero_point_of(units: str, given: float | None = None) -> float | None:
    return given if given is not None else ZERO_POINTS.get(units.lower())


def border_ring(images: np.ndarray, width: int = RING_PX) -> np.ndarray:
    """(N, C, H, W) -> (N, C, ring pixels): the outer `width` px of each stamp."""
    n, c = images.shape[:2]
    w = min(width, max(1, min(images.shape[-2:]) // 4))
    return np.concatenate([
        images[..., :w, :].reshape(n, c, -1),
        images[..., -w:, :].reshape(n, c, -1),
        images[..., w:-w, :w].reshape(n, c, -1),
        images[..., w:-w, -w:].reshape(n, c, -1),
    ], axis=-1)


def robust_noise(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, P) ring pixels -> (median background, sigma-clipped 1.4826 MAD noise), each (N, C).

    One 3-sigma clip removes neighbouring objects that reach into the ring."""
    med = np.nanmedian(ring, axis=-1, keepdims=True)
    sigma = 1.4826 * np.nanmedian(np.abs(ring - med), axis=-1, keepdims=True)
    clipped = np.where(np.abs(ring - med) <= 3 * np.maximum(sigma, 1e-30), ring, np.nan)
    med = np.nanmedian(clipped, axis=-1, keepdims=True)
    sigma = 1.4826 * np.nanmedian(np.abs(clipped - med), axis=-1)
    return med[..., 0], sigma


def measure(images: np.ndarray, bands: Sequence[str], units: Sequence[str],
            zero_points: Sequence[float | None] | None = None, rgb: Sequence[str] | None = None) -> SurveyUnits:
    """Measure background, noise and spread per band on a sample of stamps (N, C, H, W)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != len(bands) or len(units) != len(bands):
        raise UnitsError(f"cannot measure units: images {images.shape}, bands {tuple(bands)}, units {tuple(units)}")
    for u in units:
        if u.lower().startswith("display") and u.lower() not in DISPLAY_UNITS:
            raise UnitsError(f"unknown display scale {u!r}; use 'display' (0-1) or 'display255' (0-255)")
    if len(images) > MAX_SAMPLE:
        images = images[np.linspace(0, len(images) - 1, MAX_SAMPLE).astype(int)]
    zps = list(zero_points) if zero_points is not None else [None] * len(bands)
    with np.errstate(all="ignore"), _quiet_nan():
        bg, noise = robust_noise(border_ring(images)) if len(images) else (np.zeros((1, len(bands))),) * 2
        spread = np.nanstd(images.reshape(len(images), len(bands), -1).transpose(1, 0, 2).reshape(len(bands), -1),
                           axis=1) if len(images) else np.zeros(len(bands))
        per = tuple(
            BandUnits(units=u, zero_point=zero_point_of(u, zp), noise=_finite(np.nanmedian(noise[:, i])),
                      background=_finite(np.nanmedian(bg[:, i])), spread=_finite(spread[i]))
            for i, (u, zp) in enumerate(zip(units, zps, strict=True))
        )
    return SurveyUnits(bands=tuple(bands), per_band=per, rgb=tuple(rgb) if rgb else None)


def combine(parts: Sequence[SurveyUnits], weights: Sequence[int]) -> SurveyUnits:
    """One record for a survey of several shards: the units must agree; levels are weighted means."""
    first = parts[0]
    for p in parts[1:]:
        if p.bands != first.bands or [b.units for b in p.per_band] != [b.units for b in first.per_band]:
            raise UnitsError(f"shards disagree on units: {first.names} vs {p.names}")
    if len(parts) == 1:
        return first
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(parts), 1.0 / len(parts))

    def mean(attr: str, i: int) -> float:
        return float(sum(wk * getattr(p.per_band[i], attr) for wk, p in zip(w, parts, strict=True)))

    per = tuple(first.per_band[i].model_copy(update={a: mean(a, i) for a in ("noise", "background", "spread")})
                for i in range(len(first.bands)))
    return SurveyUnits(bands=first.bands, per_band=per, rgb=first.rgb)


def _finite(v: float) -> float:
    v = float(v)
    return v if np.isfinite(v) else 0.0


class _quiet_nan:
    """Silence numpy's 'All-NaN slice' RuntimeWarning for masked stamps (the value is handled)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)
