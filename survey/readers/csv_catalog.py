"""A CSV source list as a Catalog: `object_id`, `ra`, `dec` (degrees) plus any extra columns.

Extra columns whose every non-empty cell parses as a number become float64 (empty cells NaN);
the others stay strings. Duplicate ids raise DuplicateObjectId, bad positions BadPosition, both
naming the CSV file; missing columns raise MissingKey.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from .common import check_positions, check_unique_ids
from .errors import BadPosition, CorruptFile, MissingKey


def read_csv_catalog(
    path: Path | str,
    required: tuple[str, ...] = ("object_id", "ra", "dec"),
    text_columns: tuple[str, ...] = (),
) -> Catalog:
    """Read the CSV; `text_columns` stay strings even when they look numeric (file names)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's BOM
            reader = csv.DictReader(fh)
            rows = list(reader)
            names = [n.strip() for n in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorruptFile(str(path), f"not a readable CSV file: {e}") from e
    missing = [c for c in required if c not in names]
    if missing:
        raise MissingKey(str(path), f"CSV is missing column(s) {missing} (has {names})")
    raw = {
        n: [(r.get(k) or "").strip() for r in rows]
        for n, k in zip(names, reader.fieldnames or [], strict=True)
    }
    ids = np.array(raw["object_id"], dtype=object)
    empty = [i for i, v in enumerate(ids) if not v]
    if empty:
        raise MissingKey(
            str(path), f"object_id is empty on data row(s) {[i + 1 for i in empty[:5]]}"
        )
    check_unique_ids(ids, str(path))
    ra, dec = _floats(raw["ra"]), _floats(raw["dec"])
    if ra is None or dec is None:
        raise BadPosition(str(path), "ra/dec columns must be numbers in degrees")
    cols: dict[str, np.ndarray] = {
        "object_id": ids,
        "ra": check_positions(ids, ra, dec, str(path)),
        "dec": dec,
    }
    for name, values in raw.items():
        if name not in cols:
            numbers = None if name in text_columns else _floats(values)
            cols[name] = numbers if numbers is not None else np.array(values, dtype=object)
    return Catalog(cols)


def _floats(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return None
