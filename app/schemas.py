"""Wire models (kept apart from the indexer's dataclasses)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Ceilings the OpenAPI document states (declared on the parameters, so a generated client knows
# them); ServiceSettings.max_k / max_cutout_px default to them and may only lower them.
MAX_K = 500
MAX_CUTOUT_PX = 512


def clean(value: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ObjectRecord(BaseModel):
    """One catalog row with its scores; survey-specific columns (z, mag_r, class, ...) ride along."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"object_id": "sim-0000042", "ra": 151.2, "dec": 2.5, "row": 42, "z": 0.21, "mag_r": 18.7,
         "anomaly_score": 0.12, "lens_score": None}]})

    object_id: str
    ra: float | None = Field(description="right ascension, degrees ICRS; null when the position is unknown "
                                         "(ingested without a catalogue)")
    dec: float | None = Field(description="declination, degrees ICRS; null when the position is unknown")
    row: int
    anomaly_score: float | None = None
    lens_score: float | None = None
    quality_score: float | None = Field(None, description="data quality from the pixels: the largest robust "
                                        "z-score of the artifact detectors (high = likely broken pixels)")
    quality_flag: str | None = Field(None, description="the detector behind quality_score: sharp, flat, plateau, "
                                     "streak or haze")

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ObjectRecord:
        return cls(**{k: clean(v) for k, v in rec.items() if k != "healpix"})


class NeighbourRecord(ObjectRecord):
    rank: int = Field(description="0 = the closest")
    distance: float = Field(description="1 - cosine similarity of the embeddings (0 = identical)")


class SimilarResponse(BaseModel):
    version: str
    k: int
    query: ObjectRecord
    neighbours: list[NeighbourRecord]


class ErrorBody(BaseModel):
    error: str = Field(examples=["unknown_object"])
    detail: str = Field(examples=["no object with id 'nope' in this survey"])


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown object or route"},
    422: {"model": ErrorBody, "description": "invalid parameter"},
    503: {"model": ErrorBody, "description": "no published version yet"},
}
