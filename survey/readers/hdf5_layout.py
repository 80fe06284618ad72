"""Shared machinery for published HDF5 layouts (Stein et al., Hayat et al.): one `images (N,C,H,W)`
dataset plus one dataset per catalog column, all with N rows.

The catalog is read into memory when the file is opened (a few numbers per object); pixels stay on
disk and are sliced with h5py on demand, so a 100 GB file costs only the rows asked for.

Columns: every dataset of shape (N,) or (N, 1) becomes a column of the same name (after the
subclass's renames); every dataset of shape (N, C) with C the number of bands becomes C columns
`{name}_{band}` (e.g. `flux_g`). Datasets of any other shape, and groups, are not catalog columns;
their names are listed in `ignored_keys` so nothing disappears unseen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np

from ..catalog import Catalog
from ..cutout import Cutout
from .common import check_pixels, check_positions, check_unique_ids, image_rows
from .errors import CorruptFile, LayoutMismatch, MissingKey, WrongBandCount


class Hdf5LayoutReader:
    """Read side of one published HDF5 file; subclasses fix the layout constants and the ids.

    Attributes: `bands`, `pixel_scale_arcsec`, `flux_unit`, `catalog` (Catalog, one row per object
    in file order), `image_shape` (C, H, W), `ignored_keys`. Use as a context manager or `close()`.
    """

    survey_name: ClassVar[str]
    bands: ClassVar[tuple[str, ...]]
    pixel_scale_arcsec: ClassVar[float]
    flux_unit: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ("images", "ra", "dec")
    renames: ClassVar[dict[str, str]] = {}

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self._pid = os.getpid()
        self._h5: h5py.File | None = None
        f = self._file()
        missing = [k for k in self.required if k not in f or not isinstance(f[k], h5py.Dataset)]
        if missing:
            raise MissingKey(
                self.source,
                f"missing dataset(s) {missing} of the {self.survey_name} "
                f"layout (found {sorted(f.keys())})",
            )
        shape = f["images"].shape
        if len(shape) != 4:
            raise LayoutMismatch(self.source, f"'images' must be (N, C, H, W), got shape {shape}")
        if shape[1] != len(self.bands):
            hint = " (looks channels-last)" if shape[3] == len(self.bands) else ""
            raise WrongBandCount(
                self.source,
                f"'images' has {shape[1]} planes on axis 1, the "
                f"layout has {len(self.bands)} bands {self.bands}{hint}",
            )
        self.image_shape: tuple[int, int, int] = tuple(shape[1:])  # type: ignore[assignment]
        n = shape[0]
        raw, self.ignored_keys = self._read_columns(f, n)
        ids = self.object_ids(raw)
        check_unique_ids(ids, self.source)
        cols: dict[str, np.ndarray] = {"object_id": ids}
        ra, dec = raw.pop("ra"), np.asarray(raw.pop("dec"), dtype=np.float64)
        cols["ra"] = check_positions(ids, ra, dec, self.source)
        cols["dec"] = dec
        cols.update(raw)
        self.catalog = Catalog(cols)

    # -- layout hooks -------------------------------------------------------------------------
    def object_ids(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Stable string ids (N,) from the raw columns."""
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.catalog)

    def images(self, rows: np.ndarray | list[int] | slice) -> np.ndarray:
        """float32 (len(rows), C, H, W) in the order given; NaN is passed through as stored."""
        if isinstance(rows, slice):
            rows = np.arange(len(self))[rows]
        rows, out = image_rows(rows, len(self), self.image_shape, self.source)
        if len(rows) == 0:
            return out
        uniq, inverse = np.unique(rows, return_inverse=True)
        ds = self._file()["images"]
        try:
            if uniq[-1] - uniq[0] + 1 == len(uniq):  # contiguous: one hyperslab read
                block = ds[int(uniq[0]) : int(uniq[-1]) + 1]
            else:  # h5py fancy indexing wants increasing indices
                block = ds[uniq]
        except (OSError, ValueError) as e:
            raise CorruptFile(
                self.source, f"cannot read images rows {uniq[0]}..{uniq[-1]}: {e}"
            ) from e
        out[:] = np.asarray(block, dtype=np.float32)[inverse]
        return out

    def cutout(self, row: int, pixels: np.ndarray | None = None) -> Cutout:
        """One object as a Cutout; raises EmptyStamp if a band has no finite pixel.

        pixels: this row's (C, H, W) if already read in a batch, to avoid reading it again.
        """
        oid = str(self.catalog["object_id"][row])
        pixels = self.images([row])[0] if pixels is None else pixels
        check_pixels(pixels, self.source, oid, self.bands)
        return Cutout(pixels, oid, float(self.catalog["ra"][row]), float(self.catalog["dec"][row]),
                      self.pixel_scale_arcsec, self.bands)

    def iter_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, images) in file order; memory stays at one batch."""
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            yield rows, self.images(rows)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> Hdf5LayoutReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _file(self) -> h5py.File:
        # One handle per process: a DataLoader worker forked after a read must not share HDF5 state.
        if self._h5 is None or self._pid != os.getpid():
            self._pid = os.getpid()
            try:
                self._h5 = h5py.File(self.path, "r")
            except FileNotFoundError:
                raise
            except OSError as e:  # h5py reports truncation and bad signatures as OSError
                raise CorruptFile(
                    self.source, f"not a readable HDF5 file (truncated or corrupt?): {e}"
                ) from e
        return self._h5

    def _read_columns(self, f: h5py.File, n: int) -> tuple[dict[str, np.ndarray], list[str]]:
        cols: dict[str, np.ndarray] = {}
        ignored: list[str] = []
        for key in f.keys():
            if key == "images":
                continue
            ds = f[key]
            if not isinstance(ds, h5py.Dataset) or ds.ndim == 0 or ds.shape[0] != n:
                if key in self.required:
                    got = getattr(ds, "shape", "a group")
                    raise LayoutMismatch(self.source, f"{key!r} must have {n} rows, got {got}")
                ignored.append(key)
                continue
            try:
                values = (
                    ds.asstr()[()].astype(object) if h5py.check_string_dtype(ds.dtype) else ds[()]
                )
            except OSError as e:
                raise CorruptFile(self.source, f"cannot read dataset {key!r}: {e}") from e
            name = self.renames.get(key, key)
            if values.ndim == 1 or values.shape[1:] == (1,):
                cols[name] = values.reshape(n)
            elif values.ndim == 2 and values.shape[1] == len(self.bands):
                for i, band in enumerate(self.bands):
                    cols[f"{name}_{band}"] = values[:, i]
            elif key in self.required:
                raise LayoutMismatch(self.source, f"{key!r} must be ({n},), got {values.shape}")
            else:
                ignored.append(key)
        if "object_id" in cols:  # ours is derived from the layout's id columns
            del cols["object_id"]
            ignored.append("object_id")
        return cols, ignored
