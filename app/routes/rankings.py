"""Rankings, paginated: unusual objects (embedding density), broken pixels (data-quality detectors), the
two combined, and the best strong-lens candidates."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response

from indexer.store import IndexedSurvey

from ..deps import IndexDep
from ..formats import Format, FormatQuery, column_kinds, columns_of, list_responses, record_columns, table_response
from ..schemas import ERRORS, clean
from ..schemas_ops import MAX_LIMIT, MAX_OFFSET, RankedRecord, RankingResponse

router = APIRouter(prefix="/api/v1", tags=["rankings"])

Kind = Literal["anomaly", "lens", "artifact", "combined"]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page (at most {MAX_LIMIT})")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip (0 = from the top)")]

def scores_of(store: IndexedSurvey, kind: Kind) -> np.ndarray:
    return {"anomaly": store.anomaly, "lens": store.lens, "artifact": store.quality,
            "combined": store.combined}[kind]


def ranked_rows(store: IndexedSurvey, kind: Kind, include_known: bool = False) -> np.ndarray:
    """Rows with a finite score, highest score first (ties: lower row first). The lens ranking leaves
    out the known lenses unless `include_known`; the anomaly ranking keeps every object."""
    include_known = include_known or kind != "lens"

    def order() -> np.ndarray:  # sorting 10^6 scores costs ~0.1 s, too much per page: once per version
        scores = np.asarray(scores_of(store, kind), dtype=np.float64)
        keep = np.isfinite(scores) & (True if include_known else ~store.known_lens)
        rows = np.nonzero(keep)[0]
        return rows[np.argsort(-scores[rows], kind="stable")]

    return store.derived(("ranking", kind, include_known), order)


def ranking(store: IndexedSurvey, kind: Kind, limit: int, offset: int, include_known: bool = False) -> RankingResponse:
    order = ranked_rows(store, kind, include_known)
    scores = scores_of(store, kind)
    page = order[offset : offset + limit]
    items = [RankedRecord(**{k: clean(v) for k, v in store.record(int(row)).items() if k != "healpix"},
                          score=float(scores[row]), rank=offset + i + 1, known_lens=bool(store.known_lens[row]))
             for i, row in enumerate(page)]
    left_out = 0 if include_known or kind != "lens" else int((store.known_lens & np.isfinite(scores)).sum())
    described = store.manifest.get("scores", {}).get(kind)
    note = None
    if not len(order):
        note = (f"version {store.version} has no {kind} scores"
                + (f" ({described})" if described else "")
                + ("; publish a version built with known lenses (lens_labels) to rank lens candidates"
                   if kind == "lens" else ""))
    elif not items:
        note = f"offset {offset} is past the end of the ranking ({len(order)} objects)"
    return RankingResponse(version=store.version, ranking=kind, description=described, total=int(len(order)),
                           limit=limit, offset=offset, note=note, known_left_out=left_out, items=items)


def respond(store: IndexedSurvey, body: RankingResponse, fmt: Format, name: str) -> RankingResponse | Response:
    if fmt == "json":
        return body
    rows: list[dict[str, Any]] = [i.model_dump() for i in body.items]
    cols = columns_of(rows, default=record_columns(store.catalog.names, "score", "rank", "known_lens"))
    return table_response(fmt, rows, cols, name=name, total=body.total, version=body.version,
                          kinds=column_kinds(store.catalog.columns),
                          description=f"skysift {body.ranking} ranking, version {body.version}",
                          infos={"ranking": body.ranking, "limit": body.limit, "offset": body.offset,
                                 "known_left_out": body.known_left_out,
                                 **({"note": body.note} if body.note else {})})


@router.get("/rankings/anomalies", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the most anomalous objects, highest score first")})
def anomalies(store: IndexDep, limit: Limit = 50, offset: Offset = 0, fmt: FormatQuery = "json") -> Any:
    """The most anomalous objects (mean cosine distance to their nearest neighbours in embedding
    space: objects in sparse regions of the representation), highest score first."""
    return respond(store, ranking(store, "anomaly", limit, offset), fmt, "anomalies")


@router.get("/rankings/artifacts", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the stamps most likely to hold broken pixels, highest score first")})
def artifacts(store: IndexDep, limit: Limit = 50, offset: Offset = 0, fmt: FormatQuery = "json") -> Any:
    """The stamps most likely to hold broken pixels: cosmic rays, dead or hot columns, saturation,
    satellite trails, ghosts. The score is the largest robust z-score of five pixel detectors, each
    record's `quality_flag` names the one that fired. Versions built before the detectors have none
    and answer an empty list with a note."""
    return respond(store, ranking(store, "artifact", limit, offset), fmt, "artifacts")


@router.get("/rankings/combined", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("broken pixels or unusual objects, highest score first")})
def combined(store: IndexDep, limit: Limit = 50, offset: Offset = 0, fmt: FormatQuery = "json") -> Any:
    """Anything odd: per object the larger of the anomaly score's and the data-quality score's robust
    z-scores against the survey, so one list holds both broken stamps and objects unlike their neighbours."""
    return respond(store, ranking(store, "combined", limit, offset), fmt, "combined")


@router.get("/rankings/lenses", response_model=RankingResponse,
            responses={**ERRORS, **list_responses("the best strong-lens candidates, highest score first")})
def lenses(store: IndexDep, limit: Limit = 50, offset: Offset = 0, fmt: FormatQuery = "json",
           include_known: Annotated[bool, Query(description="also list the known lenses the score was trained "
                                                            "from (flagged known_lens)")] = False) -> Any:
    """The best strong-lens candidates (classifier on frozen embeddings trained from known lenses),
    highest score first. The known lenses themselves score highest and are no discovery: they are
    left out unless include_known=true (then flagged `known_lens`), and `known_left_out` counts them.
    Objects without a lens score are left out; a version built without known lenses has none, and
    answers an empty list with a note saying so."""
    return respond(store, ranking(store, "lens", limit, offset, include_known), fmt, "lenses")
