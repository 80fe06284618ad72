"""A CSV source list as a Catalog: `object_id`, `ra`, `dec` (degrees) plus any extra columns.

Column names are matched case-insensitively, and a few common spellings are accepted (ALIASES):

    object_id   object_id, objid, id
    ra          ra, ra_deg
    dec         dec, dec_deg
    file        file, path, filename

The first spelling present, in that order, is the column; it is renamed to the canonical name and
any other spelling stays an extra column (a CSV with `object_id` and `id` keeps `id` as data).

Extra columns whose every non-empty cell parses as a number become float64 (empty cells NaN);
the others stay strings. Duplicate ids raise DuplicateObjectId, bad positions BadPosition, both
naming the CSV file; missing columns raise MissingKey. With `positions_optional=True` (an image
folder's catalogue) ra/dec may be absent (every position unknown: NaN) or empty on a row (that
row's position unknown); half a position (ra without dec) is still refused.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from .common import check_positions, check_unique_ids
from .errors import BadPosition, CorruptFile, MissingKey

ALIASES: dict[str, tuple[str, ...]] = {
    "object_id": ("object_id", "objid", "id"),
    "ra": ("ra", "ra_deg"),
    "dec": ("dec", "dec_deg"),
    "file": ("file", "path", "filename"),
}


def read_csv_catalog(
    path: Path | str,
    required: tuple[str, ...] = ("object_id", "ra", "dec"),
    text_columns: tuple[str, ...] = (),
    *,
    positions_optional: bool = False,
    notes: list[str] | None = None,
) -> Catalog:
    """Read the CSV; `text_columns` stay strings even when they look numeric (file names).

    `notes` (a list) receives what was assumed, in words: renamed columns, unknown positions."""
    path = Path(path)
    notes = notes if notes is not None else []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's BOM
            reader = csv.DictReader(fh)
            rows = list(reader)
            keys = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorruptFile(str(path), f"not a readable CSV file: {e}") from e
    names = _canonical_names([k.strip() for k in keys], path, notes)
    need = list(required)
    if not positions_optional:
        need += [c for c in ("ra", "dec") if c not in need]
    missing = [c for c in need if c not in names]
    if missing:
        accepted = "; ".join(f"{c}: {', '.join(ALIASES.get(c, (c,)))}" for c in missing)
        raise MissingKey(str(path), f"CSV is missing column(s) {missing} (has {names}; accepted names {accepted})")
    raw = {n: [(r.get(k) or "").strip() for r in rows] for n, k in zip(names, keys, strict=True)}
    ids = np.array(raw["object_id"], dtype=object)
    empty = [i for i, v in enumerate(ids) if not v]
    if empty:
        raise MissingKey(
            str(path), f"object_id is empty on data row(s) {[i + 1 for i in empty[:5]]}"
        )
    check_unique_ids(ids, str(path))
    has = ("ra" in names, "dec" in names)
    if has == (False, False):
        ra = dec = np.full(len(ids), np.nan)
        notes.append(f"catalogue {path.name} has no ra/dec columns: positions unknown")
    elif has != (True, True):
        raise MissingKey(str(path), f"CSV has {'ra' if has[0] else 'dec'} but not {'dec' if has[0] else 'ra'}; "
                                    "give both columns, or neither (positions unknown)")
    else:
        ra, dec = _floats(raw["ra"]), _floats(raw["dec"])  # type: ignore[assignment]
        if ra is None or dec is None:
            raise BadPosition(str(path), "ra/dec columns must be numbers in degrees")
        unknown = int((np.isnan(ra) & np.isnan(dec)).sum())
        if unknown and positions_optional:
            notes.append(f"{unknown} of {len(ids)} object(s) in {path.name} have no position (ra/dec empty): "
                         "positions unknown")
    cols: dict[str, np.ndarray] = {
        "object_id": ids,
        "ra": check_positions(ids, ra, dec, str(path), optional=positions_optional),
        "dec": np.asarray(dec, dtype=np.float64),
    }
    for name, values in raw.items():
        if name not in cols:
            numbers = None if name in text_columns else _floats(values)
            cols[name] = numbers if numbers is not None else np.array(values, dtype=object)
    return Catalog(cols)


def _canonical_names(names: list[str], path: Path, notes: list[str]) -> list[str]:
    """The CSV's column names with the first accepted spelling of each canonical column renamed."""
    out = list(names)
    lower = [n.lower() for n in names]
    for canonical, spellings in ALIASES.items():
        if canonical in out:
            continue
        for spelling in spellings:
            if spelling in lower:
                i = lower.index(spelling)
                if out[i] != names[i]:  # already renamed to another canonical name
                    continue
                out[i] = canonical
                if names[i] != canonical:
                    notes.append(f"catalogue {path.name}: column {names[i]!r} read as {canonical}")
                break
    return out


def _floats(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return None
