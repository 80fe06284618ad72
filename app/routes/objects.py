"""Objects: a catalog record, and its most similar objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from indexer.store import Filters, IndexedSurvey, Neighbour

from ..deps import IndexDep, SettingsDep
from ..errors import ApiError
from ..schemas import ERRORS, NeighbourRecord, ObjectRecord, SimilarResponse

router = APIRouter(prefix="/api/v1", tags=["objects"])

ObjectId = Annotated[str, Path(description="the survey's object ID", examples=["sim-0000042"], min_length=1)]


def neighbour_records(store: IndexedSurvey, hits: list[Neighbour]) -> list[NeighbourRecord]:
    return [NeighbourRecord(**ObjectRecord.from_record(store.record(h.row)).model_dump(), rank=i, distance=h.distance)
            for i, h in enumerate(hits)]


def check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise ApiError(422, "invalid_parameter", f"k={k} is above the limit of {max_k}")


@router.get("/objects/{object_id:path}/similar", response_model=SimilarResponse, responses=ERRORS)
def similar(
    object_id: ObjectId, store: IndexDep, settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description="number of results (the object itself first)")] = 12,
    z_min: Annotated[float | None, Query(ge=0, le=20)] = None,
    z_max: Annotated[float | None, Query(ge=0, le=20)] = None,
    mag_max: Annotated[float | None, Query(ge=-10, le=40)] = None,
    ra: Annotated[float | None, Query(ge=0, lt=360, description="sky-region centre, deg")] = None,
    dec: Annotated[float | None, Query(ge=-90, le=90)] = None,
    radius: Annotated[float | None, Query(gt=0, le=180, description="sky-region radius, deg")] = None,
) -> SimilarResponse:
    """The k objects most similar to `object_id`, optionally within a redshift window, brighter
    than a magnitude, or inside a sky region. The query object comes first (distance 0) when it
    passes the filters."""
    check_k(k, settings.max_k)
    if radius is not None and (ra is None or dec is None):
        raise ApiError(422, "invalid_parameter", "a sky-region filter needs ra, dec and radius together")
    if z_min is not None and z_max is not None and z_min > z_max:
        raise ApiError(422, "invalid_parameter", f"z_min={z_min} is above z_max={z_max}")
    row = store.row_of(object_id)
    hits = store.similar(object_id, k, Filters(z_min, z_max, mag_max, ra, dec, radius))
    return SimilarResponse(version=store.version, k=k, query=ObjectRecord.from_record(store.record(row)),
                           neighbours=neighbour_records(store, hits))


@router.get("/objects/{object_id:path}", response_model=ObjectRecord, responses=ERRORS)
def get_object(object_id: ObjectId, store: IndexDep) -> ObjectRecord:
    """The catalog record and scores of one object."""
    return ObjectRecord.from_record(store.record(store.row_of(object_id)))
