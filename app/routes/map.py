"""The embedding map: a 2-D projection of every object, served compactly for the explorer's canvas.

    GET /api/v1/map                 -> JSON: n, bounds, method, colour classes, the binary layout
    GET /api/v1/map/points.bin      -> n x (float32 x, float32 y) little-endian, then n x uint8 colour
    GET /api/v1/map/points/{row}    -> the catalog record of the object at that map row, with x, y

The coordinates are the version's `map.npy` (UMAP or PCA at index time, `IndexedSurvey.map_xy`);
a version built without one gets a PCA of its embeddings computed here on first use. Point i is
catalog row i, so `row` of any search result finds its point. 10^6 objects make a 9 MB body,
built once per version and kept while that version is served (sorting out colour classes of 10^6
strings costs ~1 s, too much per request). The body is revalidated by ETag: a client that has it
gets 304, and a newly published version gets a new ETag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from indexer.projection import project_2d
from indexer.store import IndexedSurvey

from ..deps import IndexDep
from ..errors import ApiError
from ..schemas import ERRORS, ObjectRecord, clean

router = APIRouter(prefix="/api/v1", tags=["map"])

BIN_MEDIA = "application/octet-stream"
COLOUR_COLUMNS = ("class", "morphology", "type")  # first categorical column found colours the points
MAX_CLASSES = 16  # more distinct values than this: the most frequent 15, then "other"
NO_CLASS = 255  # colour index of every point when nothing colours the map


class MapMeta(BaseModel):
    version: str
    n: int = Field(description="number of points (= objects; point i is catalog row i)")
    method: str = Field(description="how the 2-D coordinates were made: umap or pca")
    source: str = Field(description="'artifact': map.npy of the version; 'service': PCA computed by the "
                                    "service because the version has no map")
    bounds: list[float] = Field(description="[x_min, y_min, x_max, y_max] of the finite coordinates")
    colour_by: str | None = Field(None, description="catalog column behind the colour index, if any")
    classes: list[str] = Field(description="colour index i means classes[i]; 255 means no class")
    points_url: str = "/api/v1/map/points.bin"
    layout: str = Field(description="byte layout of points.bin")
    bytes: int = Field(description="size of points.bin")


class MapPoint(ObjectRecord):
    x: float | None = Field(description="map x of the object (null when the projection gave NaN)")
    y: float | None = Field(description="map y of the object")


@dataclass(frozen=True)
class MapPayload:
    """One version's map, ready to serve: `body` is points.bin."""

    version: str
    n: int
    method: str
    source: str
    bounds: tuple[float, float, float, float]
    colour_by: str | None
    classes: tuple[str, ...]
    xy: np.ndarray  # (n, 2) float32
    body: bytes

    @property
    def etag(self) -> str:
        return f'"map-{self.version}-{self.n}"'


LAYOUT = ("n pairs of little-endian float32 (x, y), interleaved, 8n bytes; then n uint8 colour indices "
          "(classes[i], 255 = none); point i is catalog row i")


def colour_codes(values: np.ndarray | None, max_classes: int = MAX_CLASSES) -> tuple[np.ndarray | None, list[str]]:
    """(uint8 codes, class names) of a categorical column, most frequent class first; None when
    the column is missing or numeric-looking (a column of floats is no colour key)."""
    if values is None or values.dtype.kind in "fc":
        return None, []
    names, inverse, counts = np.unique(np.asarray(values).astype(str), return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")  # most frequent first, so colours are stable across runs
    keep = order[: max_classes - 1] if len(names) > max_classes else order
    code_of = np.full(len(names), len(keep), dtype=np.uint8)  # the rest: "other"
    code_of[keep] = np.arange(len(keep), dtype=np.uint8)
    classes = [str(names[i]) for i in keep] + (["other"] if len(names) > max_classes else [])
    return code_of[inverse.reshape(-1)], classes


def build_payload(version: str, xy: np.ndarray, method: str, source: str, colour_by: str | None = None,
                  values: np.ndarray | None = None) -> MapPayload:
    """Pack (n, 2) coordinates and an optional categorical column of n values into points.bin."""
    xy = np.ascontiguousarray(xy, dtype="<f4").reshape(-1, 2)
    n = len(xy)
    codes, classes = colour_codes(values)
    if codes is None:
        colour_by, codes = None, np.full(n, NO_CLASS, np.uint8)
    finite = xy[np.isfinite(xy).all(axis=1)]
    bounds = (tuple(float(v) for v in (*finite.min(axis=0), *finite.max(axis=0))) if len(finite)
              else (-1.0, -1.0, 1.0, 1.0))
    return MapPayload(version=version, n=n, method=method, source=source, bounds=bounds,  # type: ignore[arg-type]
                      colour_by=colour_by, classes=tuple(classes), xy=xy, body=xy.tobytes() + codes.tobytes())


def _payload_for(store: IndexedSurvey) -> MapPayload:
    xy = getattr(store, "map_xy", None)
    if xy is not None:
        method, source = getattr(store, "map_method", None) or "unknown", "artifact"
    else:  # a version indexed before maps existed: PCA needs nothing but numpy
        xy, method, source = project_2d(store.embeddings, "pca"), "pca", "service"
    column = next((c for c in COLOUR_COLUMNS if c in store.catalog), None)
    values = store.catalog[column] if column else None
    return build_payload(store.version, np.asarray(xy), method, source, column, values)


def payload_of(store: IndexedSurvey) -> MapPayload:
    """The store's map, built on first use (once, even when the page and a script ask at once) and
    kept as long as the store is served."""
    return store.derived("map_payload", lambda: _payload_for(store))


def _not_modified(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match", "")
    return etag in [t.strip() for t in sent.split(",")] or sent.strip() == "*"


REVALIDATE = "no-cache"  # the URL stays the same across versions: always ask, 304 when unchanged


@router.get("/map", response_model=MapMeta, responses=ERRORS)
def map_meta(store: IndexDep) -> MapMeta:
    """What the map holds and how to read `points.bin`."""
    p = payload_of(store)
    return MapMeta(version=p.version, n=p.n, method=p.method, source=p.source, bounds=list(p.bounds),
                   colour_by=p.colour_by, classes=list(p.classes), layout=LAYOUT, bytes=len(p.body))


@router.get("/map/points.bin", response_class=Response, responses={
    **ERRORS, 200: {"content": {BIN_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
                    "description": LAYOUT},
    304: {"description": "the client's copy (If-None-Match) is the current version's"}})
def map_points(request: Request, store: IndexDep) -> Response:
    """Every point's map coordinates and colour index, packed (see `GET /map` for the layout)."""
    p = payload_of(store)
    headers = {"ETag": p.etag, "Cache-Control": REVALIDATE, "X-Skysift-Version": p.version}
    if _not_modified(request, p.etag):
        return Response(status_code=304, headers=headers)
    return Response(p.body, media_type=BIN_MEDIA, headers=headers)


@router.get("/map/points/{row}", response_model=MapPoint, responses=ERRORS)
def map_point(row: Annotated[int, Path(ge=0, description="map point = catalog row of this version")],
              store: IndexDep) -> MapPoint:
    """The object at one map point (what the page opens when a point is clicked)."""
    p = payload_of(store)
    if row >= p.n or row >= len(store.catalog):
        raise ApiError(404, "unknown_point", f"no map point {row}: version {p.version} has {p.n} points "
                                             f"(rows 0 to {p.n - 1})")
    rec = ObjectRecord.from_record(store.record(row)).model_dump()
    rec.update(x=clean(float(p.xy[row, 0])), y=clean(float(p.xy[row, 1])))  # the map's x, y win over columns
    return MapPoint(**rec)
