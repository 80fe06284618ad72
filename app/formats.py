"""`?format=json|csv|votable` for every list endpoint: the converters and their OpenAPI docs.

A list endpoint builds its rows as plain dicts (one per object, JSON-ready: NaN already None) and
calls `table_response` for csv/votable; json stays the endpoint's pydantic response model.

- CSV (RFC 4180, `text/csv`): a header row, then one line per row; None is an empty field. A text
  cell that a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a carriage
  return and is not a number) gets a leading apostrophe (OWASP's CSV-injection advice): voters and
  notes are free text from anyone who can vote, and the exports are opened in spreadsheets.
  Paging metadata travels in headers (`X-Total-Count`, `X-Skysift-Version`).
- VOTable (`application/x-votable+xml`, VOTable 1.4 via astropy.io.votable): one RESOURCE with
  one TABLE; paging metadata and notes are INFO elements of the RESOURCE; object_id/ra/dec carry
  the UCD1+ `meta.id;meta.main`, `pos.eq.ra;meta.main`, `pos.eq.dec;meta.main`. None becomes a
  masked (empty) cell; integer columns with gaps get an explicit VALUES null.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Query
from fastapi.responses import Response

Format = Literal["json", "csv", "votable"]
FormatQuery = Annotated[Format, Query(alias="format", description=(
    "response format: `json` (default), `csv` (header row + one line per row) or `votable` "
    "(IVOA VOTable 1.4 XML); the same rows in each"))]

CSV_MEDIA = "text/csv"
VOTABLE_MEDIA = "application/x-votable+xml"
MEDIA = {"json": "application/json", "csv": CSV_MEDIA, "votable": VOTABLE_MEDIA}

# UCD1+ (IVOA UCD list) and units of the columns every survey catalog has or that skysift adds.
UCDS = {"object_id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main",
        "z": "src.redshift", "mag_r": "phot.mag;em.opt.R", "rank": "meta.number",
        "separation_deg": "pos.angDistance"}
UNITS = {"ra": "deg", "dec": "deg", "separation_deg": "deg", "mag_r": "mag"}
DESCRIPTIONS = {
    "object_id": "the survey's object ID (stable across versions)",
    "ra": "right ascension, ICRS", "dec": "declination, ICRS",
    "row": "row of the object in this index version",
    "anomaly_score": "mean cosine distance to the nearest neighbours in embedding space (higher = rarer)",
    "lens_score": "strong-lens classifier score in [0, 1] (empty when the version has no known lenses)",
    "score": "the ranking's score", "rank": "position in the ranking, 1 = highest score",
    "distance": "1 - cosine similarity to the query object's embedding (0 = identical)",
    "separation_deg": "angular distance from the cone centre",
}
_INT64_NULL = int(np.iinfo(np.int64).min)


def list_responses(what: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entry documenting the csv and votable bodies next to the json model."""
    return {200: {"description": what, "content": {
        CSV_MEDIA: {"schema": {"type": "string"}, "example": "object_id,ra,dec,...\nsim-0000042,151.2,2.5,...\n"},
        VOTABLE_MEDIA: {"schema": {"type": "string"}, "example": '<VOTABLE version="1.4">...</VOTABLE>'},
    }}}


def columns_of(rows: Sequence[Mapping[str, Any]], default: Sequence[str] = ()) -> list[str]:
    """Column names in first-seen order over all rows (the default ones when there are no rows)."""
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen) if seen else list(default)


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


# ---------------------------------------------------------------- CSV


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(v: Any) -> Any:
    """A text cell a spreadsheet would evaluate, made literal with a leading apostrophe."""
    if not isinstance(v, str) or not v.startswith(FORMULA_START):
        return v
    try:
        float(v)  # "-1.5", "+3e2": numbers stay numbers
        return v
    except ValueError:
        return "'" + v


def csv_bytes(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([_inert(c) for c in columns])
    for r in rows:
        w.writerow(["" if (c := _cell(r.get(k))) is None else _inert(c) for k in columns])
    return buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------- VOTable


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_ascii(s: str) -> bool:
    return s.isascii() and all(c >= " " or c in "\t\n\r" for c in s)


def _column(values: list[Any], kind: str = "text") -> tuple[np.ndarray, np.ndarray, bool]:
    """(data, mask, needs an integer null) for one column of python values (None = missing);
    `kind` (float, int, bool, text) types a column that has no values at all."""
    mask = np.array([v is None for v in values], dtype=bool)
    present = [v for v in values if v is not None]
    if not present:  # no rows, or no value in any row: the column's type comes from `kind`
        if kind == "int":
            return np.full(len(values), _INT64_NULL, dtype=np.int64), mask, bool(values)
        if kind == "float":
            return np.full(len(values), np.nan), mask, False
        return np.array([b""] * len(values), dtype=bytes) if values else np.array([], dtype=bytes), mask, False
    if present and all(isinstance(v, bool | np.bool_) for v in present) and not mask.any():
        return np.array(values, dtype=bool), mask, False  # VOTable bits cannot be masked: gaps -> strings below
    if present and all(_is_int(v) for v in present) and all(-(2**63) < int(v) < 2**63 for v in present):
        return np.array([_INT64_NULL if v is None else int(v) for v in values], dtype=np.int64), mask, bool(mask.any())
    if present and all(_is_int(v) or isinstance(v, float | np.floating) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64), mask, False
    text = ["" if v is None else (str(v).lower() if isinstance(v, bool | np.bool_) else str(v)) for v in values]
    if all(_is_ascii(t) for t in text):
        return np.array([t.encode("ascii") for t in text], dtype=bytes), mask, False  # VOTable char
    # unicodeChar holds UCS-2: characters outside the BMP or control characters cannot be written
    clean = ["".join(c if (" " <= c <= "\uffff" and not "\ud800" <= c <= "\udfff") or c in "\t\n\r" else "\ufffd"
                     for c in t) for t in text]
    return np.array(clean, dtype=str), mask, False


def votable_bytes(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, description: str = "",
                  infos: Mapping[str, Any] | None = None, ucds: Mapping[str, str] = UCDS,
                  units: Mapping[str, str] = UNITS, kinds: Mapping[str, str] | None = None,
                  descriptions: Mapping[str, str] = DESCRIPTIONS,
                  version: str = "1.4") -> bytes:
    """A VOTable with one RESOURCE holding one TABLE of `rows` (columns in the given order);
    `kinds` types the columns of an empty table (default text)."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info
    from astropy.table import MaskedColumn, Table

    table = Table()
    int_nulls = []
    for name in columns:
        data, mask, int_null = _column([_cell(r.get(name)) for r in rows], (kinds or {}).get(name, "text"))
        table[name] = MaskedColumn(data, mask=mask) if mask.any() else data
        if int_null:
            int_nulls.append(name)
    vot = from_table(table)
    vot.version = version
    if description:
        vot.description = description
    res = vot.resources[0]
    for name, value in (infos or {}).items():
        res.infos.append(Info(name=name, value="" if value is None else str(value)))
    vtab = vot.get_first_table()
    for f in vtab.fields:
        if f.datatype in ("char", "unicodeChar"):
            f.arraysize = "*"
        if f.name in ucds:
            f.ucd = ucds[f.name]
        if f.name in units:
            f.unit = units[f.name]
        if f.name in int_nulls:
            f.values.null = _INT64_NULL
        if f.name in descriptions:
            f.description = descriptions[f.name]
    buf = io.BytesIO()
    vot.to_xml(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- responses


def table_response(fmt: Format, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, name: str,
                   description: str = "", infos: Mapping[str, Any] | None = None,
                   total: int | None = None, version: str | None = None,
                   kinds: Mapping[str, str] | None = None,
                   descriptions: Mapping[str, str] = DESCRIPTIONS) -> Response:
    """The csv or votable response for `rows` (json is the caller's own model)."""
    headers = {"Content-Disposition": f'inline; filename="{name}.{"csv" if fmt == "csv" else "xml"}"'}
    if total is not None:
        headers["X-Total-Count"] = str(total)
    if version is not None:
        headers["X-Skysift-Version"] = version
    if fmt == "csv":
        return Response(csv_bytes(rows, columns), media_type=CSV_MEDIA, headers=headers)
    if fmt == "votable":
        meta = {**({"version": version} if version else {}), **({"total": total} if total is not None else {}),
                **(infos or {})}
        return Response(votable_bytes(rows, columns, description=description, infos=meta, kinds=kinds,
                                      descriptions=descriptions),
                        media_type=VOTABLE_MEDIA, headers=headers)
    raise ValueError(f"table_response handles csv and votable, not {fmt!r}")


RECORD_KINDS = {"row": "int", "anomaly_score": "float", "lens_score": "float", "score": "float", "rank": "int",
                "distance": "float", "separation_deg": "float"}


def column_kinds(catalog_columns: Mapping[str, np.ndarray]) -> dict[str, str]:
    """float/int/bool/text of each catalog column (numpy dtype kind) and of the columns skysift adds."""
    out = {}
    for name, values in catalog_columns.items():
        k = np.asarray(values).dtype.kind
        out[name] = "float" if k == "f" else "int" if k in "iu" else "bool" if k == "b" else "text"
    return {**out, **RECORD_KINDS}


def record_columns(catalog_names: Sequence[str], *extra: str) -> list[str]:
    """Column order of an object record (as ObjectRecord dumps it) followed by `extra`: the header
    of an empty page."""
    first = ["object_id", "ra", "dec", "row", "anomaly_score", "lens_score", *extra]
    return first + [c for c in catalog_names if c not in first and c != "healpix"]
