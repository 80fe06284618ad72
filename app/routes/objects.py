"""Objects: a catalog record, and its most similar objects.

`/similar` is the hot path (bench/bench_service_load.py): it is an `async` handler with the async
dependencies of `app/deps.py`, so an unfiltered query costs no thread-pool hop (FastAPI runs every
sync handler and sync dependency in a worker thread: three hand-offs per request), and its JSON is built from plain
dicts and encoded once by pydantic-core instead of building and re-validating pydantic models.
Work that can take long (a filtered exact scan, an exact Flat index over many vectors, a CSV or
VOTable conversion) still goes to the thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from indexer.store import Filters, IndexedSurvey, Neighbour

from ..deps import IndexDep, SettingsDep
from ..errors import ApiError
from ..formats import Format, FormatQuery, column_kinds, columns_of, list_responses, record_columns, table_response
from ..schemas import ERRORS, MAX_K, NeighbourRecord, ObjectRecord, SimilarResponse, clean

router = APIRouter(prefix="/api/v1", tags=["objects"])

ObjectId = Annotated[str, Path(description="the survey's object ID", examples=["sim-0000042"], min_length=1)]
REGION = "A sky-region filter needs all three of ra, dec and radius (422 otherwise)."
INLINE_FLAT_MAX = 50_000  # an exact (Flat) search over more vectors than this runs in the thread pool


_FIRST = ("object_id", "ra", "dec", "row", "anomaly_score", "lens_score")  # ObjectRecord's declared fields


def record_dict(store: IndexedSurvey, row: int) -> dict[str, Any]:
    """One object's wire record as a plain dict, keys in the order ObjectRecord.model_dump() gives."""
    rec = store.record(row)
    out = {k: clean(rec[k]) for k in _FIRST}
    out.update((k, clean(v)) for k, v in rec.items() if k not in out and k != "healpix")
    return out


def neighbour_dicts(store: IndexedSurvey, hits: list[Neighbour]) -> list[dict[str, Any]]:
    return [{**record_dict(store, h.row), "rank": i, "distance": h.distance} for i, h in enumerate(hits)]


def neighbour_records(store: IndexedSurvey, hits: list[Neighbour]) -> list[NeighbourRecord]:
    return [NeighbourRecord(**d) for d in neighbour_dicts(store, hits)]


def check_k(k: int, max_k: int) -> None:
    if k > max_k:
        raise ApiError(422, "invalid_parameter", f"k={k} is above the limit of {max_k}")


def make_filters(k: int | None, z_min: float | None, z_max: float | None, mag_max: float | None,
                 default_k: int, max_k: int, ra: float | None = None, dec: float | None = None,
                 radius: float | None = None) -> tuple[int, Filters]:
    """k (the service's default_k when not given) and the filters of any search, checked in one place:
    k within max_k, z_min <= z_max, a sky region only with ra, dec and radius together."""
    k = default_k if k is None else k
    check_k(k, max_k)
    given = [name for name, v in (("ra", ra), ("dec", dec), ("radius", radius)) if v is not None]
    if given and len(given) < 3:  # ra and dec alone were silently ignored
        raise ApiError(422, "invalid_parameter", f"a sky-region filter needs ra, dec and radius together; only "
                                                 f"{', '.join(given)} given")
    if z_min is not None and z_max is not None and z_min > z_max:
        raise ApiError(422, "invalid_parameter", f"z_min={z_min} is above z_max={z_max}")
    return k, Filters(z_min, z_max, mag_max, ra, dec, radius)


@router.get(
    "/objects/{object_id:path}/similar",
    response_model=SimilarResponse,
    responses={**ERRORS, **list_responses("the query object, then its nearest neighbours")},
)
async def similar(
    object_id: ObjectId,
    store: IndexDep,
    settings: SettingsDep,
    k: Annotated[int | None, Query(ge=1, le=MAX_K, description="number of results, the object itself first "
                                                             "(default: the service's default_k)")] = None,
    z_min: Annotated[float | None, Query(ge=0, le=20)] = None,
    z_max: Annotated[float | None, Query(ge=0, le=20)] = None,
    mag_max: Annotated[float | None, Query(ge=-10, le=40)] = None,
    ra: Annotated[float | None, Query(ge=0, lt=360, description=f"sky-region centre, deg ICRS. {REGION}")] = None,
    dec: Annotated[float | None, Query(ge=-90, le=90, description=f"sky-region centre, deg ICRS. {REGION}")] = None,
    radius: Annotated[float | None, Query(gt=0, le=180, description=f"sky-region radius, deg. {REGION}")] = None,
    fmt: FormatQuery = "json",
) -> Any:
    """The k objects most similar to `object_id`, optionally within a redshift window, brighter
    than a magnitude, or inside a sky region. The query object comes first (distance 0) when it
    passes the filters."""
    k, filters = make_filters(k, z_min, z_max, mag_max, settings.default_k, settings.max_k, ra, dec, radius)
    slow = filters.active or fmt != "json" or (store.spec.factory == "Flat" and len(store) > INLINE_FLAT_MAX)
    if slow:
        return await run_in_threadpool(similar_response, store, object_id, k, filters, fmt)
    return similar_response(store, object_id, k, filters, fmt)


def neighbour_table(store: IndexedSurvey, fmt: Format, neighbours: list[dict[str, Any]], *, name: str,
                    description: str, infos: dict[str, Any]) -> Response:
    """A search's neighbours as csv/votable (app/formats.py), one row each in rank order: the one
    table shape of /similar and of every /search route."""
    cols = columns_of(neighbours, default=record_columns(store.catalog.names, "rank", "distance"))
    return table_response(fmt, neighbours, cols, name=name, total=len(neighbours), version=store.version,
                          kinds=column_kinds(store.catalog.columns),
                          description=f"{description}, version {store.version}", infos=infos)


def similar_response(store: IndexedSurvey, object_id: str, k: int, filters: Filters, fmt: Format) -> Response:
    row = store.row_of(object_id)
    neighbours = neighbour_dicts(store, store.similar(object_id, k, filters))
    if fmt != "json":  # csv/votable: one row per neighbour; the query object is row 0 when it passes
        return neighbour_table(store, fmt, neighbours, name=f"similar-{row}",
                               description=f"objects most similar to {object_id}",
                               infos={"query_object_id": object_id, "k": k})
    first = neighbours[0] if neighbours and neighbours[0]["row"] == row else None  # the query itself, usually
    query = {c: v for c, v in first.items() if c not in ("rank", "distance")} if first else record_dict(store, row)
    body = {"version": store.version, "k": k, "query": query, "neighbours": neighbours}
    return Response(pydantic_core.to_json(body), media_type="application/json")


@router.get("/objects/{object_id:path}", response_model=ObjectRecord, responses=ERRORS)
def get_object(object_id: ObjectId, store: IndexDep) -> ObjectRecord:
    """The catalog record and scores of one object."""
    return ObjectRecord.from_record(store.record(store.row_of(object_id)))
