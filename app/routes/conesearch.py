"""IVOA Simple Cone Search 1.03 (https://www.ivoa.net/documents/latest/ConeSearch.html).

    GET /api/v1/conesearch?RA=150.5&DEC=2.2&SR=0.05[&VERB=1|2|3][&MAXREC=n][&OFFSET=m]

Answers a VOTable (1.1, one RESOURCE, one TABLE) of the catalog rows within SR degrees of
(RA, DEC), nearest first, with the SCS 1.03 UCDs `ID_MAIN` (object_id, char), `POS_EQ_RA_MAIN`
and `POS_EQ_DEC_MAIN` (ra, dec, double, ICRS degrees). SR=0 answers the table's metadata with no
rows (the standard's way to discover the columns).

Errors deviate on purpose from the rest of the API (JSON + 4xx): SCS clients (TOPCAT, pyvo,
astroquery) expect HTTP 200 and a VOTable whose root holds `<INFO name="Error" value="...">`,
so a missing, unparsable or out-of-range RA/DEC/SR, or SR above MAX_SR_DEG, answers that.
Parameter names are matched case-insensitively (DALI); unknown parameters are ignored, as SCS
clients send their own (RUNID, RESPONSEFORMAT).

An answer holds at most MAXREC rows (DALI 1.1 §3.2.3: default DEFAULT_MAXREC, at most
ServiceSettings.max_cone_records; a larger MAXREC is lowered to it): the nearest rows of the cone
after skipping OFFSET of them (not in SCS 1.03; it pages the nearest-first order). When more rows
are in the cone, the RESOURCE's INFO QUERY_STATUS is "OVERFLOW" (as SCS and DALI use it) and INFO
next_offset says where the next page starts; INFO rows_in_cone counts them all. Only the rows sent
are turned into records, so an answer costs O(MAXREC), whatever the cone holds.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from indexer.errors import ArtifactError
from indexer.store import IndexedSurvey

from ..deps import IGNORES_UNKNOWN_QUERY
from ..formats import column_kinds, votable_bytes
from ..schemas import clean

router = APIRouter(prefix="/api/v1", tags=["conesearch"])

MEDIA = "text/xml"
MAX_SR_DEG = 10.0  # the service's MaxSR
DEFAULT_MAXREC = 1000  # rows per answer when MAXREC is not given (at most ServiceSettings.max_cone_records)
# SCS 1.03 requires these UCD1 words (one FIELD each); UCD1+ (meta.id;meta.main, ...) would not be
# recognised by 1.03 clients, and a FIELD has only one ucd. The table formats of the other routes use UCD1+.
SCS_UCDS = {"object_id": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN",
            "separation_deg": "POS_ANG_DIST_GENERAL"}
UNITS = {"ra": "deg", "dec": "deg", "separation_deg": "deg"}
_DOC_XML = ('<VOTABLE version="1.1"><RESOURCE type="results"><TABLE><FIELD name="object_id" ucd="ID_MAIN" '
            'datatype="char" arraysize="*"/>...</TABLE></RESOURCE></VOTABLE>')

class ScsError(ValueError):
    """A request the standard says to answer with an error VOTable."""


def error_votable(message: str) -> Response:
    from astropy.io.votable.tree import Info, VOTableFile

    vot = VOTableFile(version="1.1")
    vot.description = "skysift Simple Cone Search"
    vot.infos.append(Info(ID="Error", name="Error", value=message))
    buf = io.BytesIO()
    vot.to_xml(buf)
    return Response(buf.getvalue(), media_type=MEDIA)


def _param(request: Request, name: str) -> str | None:
    values = [v for k, v in request.query_params.multi_items() if k.upper() == name]
    if len(values) > 1:
        raise ScsError(f"{name} must be given once, got {len(values)} values")
    return values[0] if values else None


def _number(request: Request, name: str, lo: float, hi: float, what: str) -> float:
    raw = _param(request, name)
    if raw is None or not raw.strip():
        raise ScsError(f"missing required parameter {name} ({what}); e.g. ?RA=150.1&DEC=2.2&SR=0.05")
    try:
        value = float(raw.strip())
    except ValueError:
        raise ScsError(f"{name}={raw[:40]!r} is not a number ({what})") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ScsError(f"{name}={raw[:40]} is out of range [{lo:g}, {hi:g}] ({what})")
    return value


def columns_for(store: IndexedSurvey, verb: int) -> list[str]:
    """VERB=1: id and position; 2 (default): + separation, redshift, magnitude, scores; 3: every
    catalog column."""
    base = ["object_id", "ra", "dec"]
    if verb == 1:
        return base
    extra = [c for c in (store.redshift_column, store.magnitude_column) if c in store.catalog]
    middle = ["separation_deg", *extra, "anomaly_score", "lens_score"]
    if verb == 2:
        return base + middle
    rest = [c for c in store.catalog.names if c not in base + middle and c != "healpix"]
    return base + middle + rest


def _count(request: Request, name: str, default: int, what: str) -> int:
    raw = _param(request, name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ScsError(f"{name}={raw[:40]!r} is not a whole number ({what})") from None
    if value < 0:
        raise ScsError(f"{name}={value} is negative ({what})")
    return value


def cone_votable(store: IndexedSurvey, ra: float, dec: float, sr: float, verb: int, maxrec: int, offset: int,
                 max_records: int) -> bytes:
    """The page [offset, offset + maxrec) of the cone's rows, nearest first."""
    rows_idx, sep = (np.empty(0, np.int64), np.empty(0)) if sr == 0 else store.cone_rows(ra % 360.0, dec, sr)
    total = len(rows_idx)
    end = offset + maxrec
    overflow = total > end
    rows_idx, sep = rows_idx[offset:end], sep[offset:end]
    columns = columns_for(store, verb)
    rows: list[dict[str, Any]] = []
    for row, s in zip(rows_idx, sep, strict=True):
        rec = store.record(int(row))
        rec["separation_deg"] = float(s)
        rows.append({c: clean(rec.get(c)) for c in columns})
    infos: dict[str, Any] = {"QUERY_STATUS": "OVERFLOW" if overflow else "OK", "version": store.version,
                             "SR_max_deg": MAX_SR_DEG, "max_records": max_records, "MAXREC": maxrec,
                             "offset": offset, "rows_in_cone": total}
    if overflow:
        infos["next_offset"] = end
    kinds = column_kinds(store.catalog.columns)
    return votable_bytes(rows, columns, description=f"skysift cone search, version {store.version}",
                         infos=infos, ucds=SCS_UCDS, units=UNITS, kinds=kinds, version="1.1")


@router.get("/conesearch", response_class=Response, openapi_extra={IGNORES_UNKNOWN_QUERY: "ignored (SCS clients add "
                                                                                         "their own parameters)"},
            responses={200: {
    "description": "a VOTable of the objects in the cone, or (standard SCS behaviour) a VOTable holding "
                   '`<INFO name="Error" value="...">` when RA/DEC/SR are missing, invalid or SR is too large',
    "content": {MEDIA: {"schema": {"type": "string"}, "example": _DOC_XML}}}})
def conesearch(
    request: Request,
    ra: Annotated[str | None, Query(alias="RA", description="right ascension of the centre, decimal degrees, ICRS "
                                                            "[0, 360]")] = None,
    dec: Annotated[str | None, Query(alias="DEC", description="declination of the centre, decimal degrees, ICRS "
                                                              "[-90, 90]")] = None,
    sr: Annotated[str | None, Query(alias="SR", description=f"search radius, decimal degrees [0, {MAX_SR_DEG:g}]; "
                                                            "0 returns the columns only")] = None,
    verb: Annotated[str | None, Query(alias="VERB", description="1: id and position; 2 (default): + separation, "
                                                                "redshift, magnitude, scores; 3: every column")] = None,
    maxrec: Annotated[str | None, Query(alias="MAXREC", description=(
        f"most rows in the answer (DALI MAXREC): default {DEFAULT_MAXREC}, at most the service's max_cone_records "
        "(a larger value is lowered to it); QUERY_STATUS OVERFLOW and INFO next_offset say when the cone holds "
        "more"))] = None,
    offset: Annotated[str | None, Query(alias="OFFSET", description=(
        "nearest-first rows to skip (default 0): the next page starts at the previous answer's INFO "
        "next_offset"))] = None,
) -> Response:
    """IVOA Simple Cone Search 1.03: the catalogued objects within SR degrees of (RA, DEC), nearest
    first, as a VOTable. Errors are VOTables with an `INFO name="Error"` and HTTP 200, as the
    standard prescribes."""
    # The parameters are declared (as text, so that no FastAPI 422 pre-empts the SCS error VOTable)
    # for the OpenAPI document; their values are read from the query string case-insensitively.
    try:
        ra_deg = _number(request, "RA", 0.0, 360.0, "right ascension in decimal degrees")
        dec_deg = _number(request, "DEC", -90.0, 90.0, "declination in decimal degrees")
        sr_deg = _number(request, "SR", 0.0, MAX_SR_DEG, "search radius in decimal degrees")
        raw_verb = _param(request, "VERB")
        verb_level = 2
        if raw_verb is not None and raw_verb.strip():
            try:
                verb_level = min(max(int(float(raw_verb.strip())), 1), 3)
            except (ValueError, OverflowError):
                raise ScsError(f"VERB={raw_verb[:40]!r} is not 1, 2 or 3") from None
        max_records = request.app.state.settings.max_cone_records
        maxrec_n = min(_count(request, "MAXREC", DEFAULT_MAXREC, "rows per answer"), max_records)
        offset_n = _count(request, "OFFSET", 0, "rows to skip")
        store = request.app.state.holder.get()
    except ScsError as exc:
        return error_votable(str(exc))
    except ArtifactError as exc:  # nothing published yet: still a VOTable for SCS clients
        return error_votable(f"no index is being served: {exc}")
    return Response(cone_votable(store, ra_deg, dec_deg, sr_deg, verb_level, maxrec_n, offset_n, max_records),
                    media_type=MEDIA)
