"""The catalog: one row per object, columns as numpy arrays.

Required columns (DESIGN.md §3): `object_id` (str, unique, stable), `ra` and `dec` (degrees, ICRS).
An object whose position is unknown (an image folder without a catalogue) has ra and dec both
NaN; one of them NaN is refused. Downstream code skips such rows in anything positional (HEALPix
index -1, never in a cone) and shows the position as null.
Any other column is carried along (redshift, magnitudes, truth labels). A plain dict of equal-length
arrays keeps the survey package free of a dataframe dependency; `to_arrow`/`from_arrow` convert at
the edge where Parquet is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CatalogError, UnknownObject

REQUIRED = ("object_id", "ra", "dec")


@dataclass
class Catalog:
    columns: dict[str, np.ndarray]
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED if c not in self.columns]
        if missing:
            raise CatalogError(f"catalog is missing required column(s): {', '.join(missing)}")
        n = len(self.columns["object_id"])
        for name, values in self.columns.items():
            if len(values) != n:
                raise CatalogError(f"column {name!r} has {len(values)} rows, object_id has {n}")
        self.columns["object_id"] = np.asarray(self.columns["object_id"]).astype(str).astype(object)
        self.columns["ra"] = np.asarray(self.columns["ra"], dtype=np.float64)
        self.columns["dec"] = np.asarray(self.columns["dec"], dtype=np.float64)
        ra, dec = self.columns["ra"], self.columns["dec"]
        if n and np.any(np.isnan(ra) != np.isnan(dec)):
            raise CatalogError("ra and dec must be known together: both numbers, or both NaN (position unknown)")
        known = ~np.isnan(ra)
        ra_k, dec_k = ra[known], dec[known]
        if len(ra_k) and (np.any(~np.isfinite(ra_k)) or np.any((ra_k < 0) | (ra_k >= 360))):
            raise CatalogError("ra must be finite and in [0, 360) degrees (or NaN with dec: position unknown)")
        if len(dec_k) and (np.any(~np.isfinite(dec_k)) or np.any(np.abs(dec_k) > 90)):
            raise CatalogError("dec must be finite and in [-90, 90] degrees (or NaN with ra: position unknown)")
        ids = self.columns["object_id"]
        if len(set(ids.tolist())) != n:
            values, counts = np.unique(ids.astype(str), return_counts=True)
            dup = values[counts > 1][:5].tolist()
            raise CatalogError(f"duplicate object_id values, e.g. {dup}")

    def __len__(self) -> int:
        return len(self.columns["object_id"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def row_of(self, object_id: str) -> int:
        """Row number of an object; raises UnknownObject."""
        if self._index is None:
            self._index = {oid: i for i, oid in enumerate(self.columns["object_id"].tolist())}
        try:
            return self._index[object_id]
        except KeyError:
            raise UnknownObject(object_id) from None

    def row(self, i: int) -> dict[str, Any]:
        """One row as plain Python values (JSON-ready; NaN stays NaN)."""
        return {k: _py(v[i]) for k, v in self.columns.items()}

    def take(self, rows: np.ndarray | Iterable[int]) -> Catalog:
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        return Catalog({k: v[rows] for k, v in self.columns.items()})

    @classmethod
    def concat(cls, parts: list[Catalog]) -> Catalog:
        if not parts:
            raise CatalogError("cannot concatenate zero catalogs")
        names = parts[0].names
        for p in parts[1:]:
            if p.names != names:
                raise CatalogError(f"catalog columns differ: {names} vs {p.names}")
        return cls({k: np.concatenate([p.columns[k] for p in parts]) for k in names})

    def to_arrow(self):  # -> pyarrow.Table
        import pyarrow as pa

        return pa.table({k: _arrow_col(v) for k, v in self.columns.items()})

    @classmethod
    def from_arrow(cls, table) -> Catalog:
        cols = {}
        for name in table.column_names:
            arr = table.column(name).to_numpy(zero_copy_only=False)
            cols[name] = arr.astype(object) if arr.dtype.kind in "OUS" else arr
        return cls(cols)


def _arrow_col(v: np.ndarray):
    if v.dtype.kind in "OUS":
        return v.astype(str).tolist()
    return v


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode()
    return v
