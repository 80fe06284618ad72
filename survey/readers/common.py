"""Checks every reader shares: finite pixels, unique ids, sane (or unknown) positions, id formatting,
and the sorted recursive listing of a folder's files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import BadPosition, DuplicateObjectId, EmptyStamp, LayoutMismatch


class Rejection(NamedTuple):
    """One object left out of an ingest: where it came from, which object, and why."""

    source: str
    object_id: str | None
    reason: str


def check_pixels(
    pixels: np.ndarray, source: str, object_id: str, bands: Sequence[str]
) -> np.ndarray:
    """Raise EmptyStamp if any band of `pixels` (C, H, W) has no finite pixel; return pixels.

    Partly-NaN stamps pass: NaN marks masked or off-image pixels where a reader says so.
    """
    finite = np.isfinite(pixels).reshape(pixels.shape[0], -1).any(axis=1)
    if not finite.all():
        empty = [bands[i] if i < len(bands) else str(i) for i in np.nonzero(~finite)[0].tolist()]
        what = "all bands" if not finite.any() else f"band(s) {','.join(empty)}"
        raise EmptyStamp(source, f"NaN-only stamp: {what} have no finite pixel", object_id)
    return pixels


def image_rows(rows: np.ndarray | list[int], n: int, image_shape: tuple[int, ...],
               source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a reader's `images(rows)` as int64, and the float32 (len(rows), *image_shape)
    array to fill; IndexError (naming `source`) when a row is outside [0, n)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise IndexError(f"{source + ': ' if source else ''}rows out of range [0, {n})")
    return rows, np.empty((len(rows), *image_shape), dtype=np.float32)


def check_unique_ids(ids: np.ndarray, source: str) -> None:
    """Raise DuplicateObjectId naming up to five repeated ids and how often each occurs."""
    ids = np.asarray(ids).astype(str)
    if len(np.unique(ids)) == len(ids):
        return
    values, counts = np.unique(ids, return_counts=True)
    repeated = [(v, c) for v, c in zip(values.tolist(), counts.tolist(), strict=True) if c > 1]
    shown = ", ".join(f"{v!r} x{c}" for v, c in repeated[:5])
    raise DuplicateObjectId(source, f"{len(repeated)} duplicate object id(s): {shown}")


def check_positions(
    ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, source: str, *, optional: bool = False
) -> np.ndarray:
    """Return ra wrapped into [0, 360); raise BadPosition naming the first bad object.

    `optional=True` (a reader whose inputs may carry no position: an image folder without a
    catalogue, a CSV without ra/dec) lets a row whose ra AND dec are both NaN through: its position
    is unknown and stays NaN. Half-known positions, infinities and |dec| > 90 are refused always.
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    unknown = np.isnan(ra) & np.isnan(dec) if optional else np.zeros(ra.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        bad = (~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)) & ~unknown
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        why = "" if not optional else " (a position may be unknown: ra and dec both empty/NaN)"
        raise BadPosition(
            source,
            f"ra/dec ({ra[i]}, {dec[i]}) deg is not a sky position{why} "
            f"({int(bad.sum())} object(s) affected)",
            str(ids[i]),
        )
    return np.mod(ra, 360.0)


def list_files(root: Path, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """Paths (POSIX, relative to `root`) of the files under `root` and all its sub-folders, sorted.

    `suffixes` keeps only names ending so (case-insensitive, e.g. (".png", ".jpg")). Hidden files
    and folders (a leading dot: .DS_Store, .git) are skipped. The order is that of the relative
    path strings, so it is the same on every machine and file system.
    """
    root = Path(root)
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if suffixes is None or path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
            out.append(rel.as_posix())
    return sorted(out)


def int_strings(values: np.ndarray, key: str, source: str) -> np.ndarray:
    """Integer ids as decimal strings; floats are accepted only when integral.

    Float storage above 2**53 has already lost digits, so such ids are refused rather than
    written as different objects' ids.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values.astype(str).astype(object)
    if values.dtype.kind == "f":
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            if np.all(np.abs(values) < 2**53):
                return values.astype(np.int64).astype(str).astype(object)
            raise LayoutMismatch(source, f"{key!r} stored as float beyond 2**53: ids lost digits")
        raise LayoutMismatch(source, f"{key!r} has non-integer values, cannot form object ids")
    if values.dtype.kind in "OSU":
        return np.array([_text(v).strip() for v in values], dtype=object)
    raise LayoutMismatch(source, f"{key!r} has dtype {values.dtype}, cannot form object ids")


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
