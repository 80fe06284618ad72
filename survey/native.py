"""The native skysift HDF5 layout (DESIGN.md §3) and its reader.

A survey is a folder of shards `shard-00000.h5`, `shard-00001.h5`, ... Each shard holds
`images (N, C, H, W) float32` (one object per chunk, LZF-compressed: fast, deterministic, built into
h5py), `object_id`, `ra`, `dec` and any per-object columns, with file attributes `bands`,
`pixel_scale_arcsec`, `survey_name`. A shard is first written as `*.h5.partial` and renamed when
complete, so a crash never leaves a shard that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from .catalog import Catalog
from .cutout import Cutout
from .errors import SurveyError, UnreadableCutout
from .readers.common import image_rows
from .units import MAX_SAMPLE, SurveyUnits, UnitsError, combine, measure

SHARD_GLOB = "shard-*.h5"
_STR = h5py.string_dtype("utf-8")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def write_shard(
    path: Path,
    images: np.ndarray,
    catalog: Catalog,
    bands: tuple[str, ...],
    pixel_scale_arcsec: float,
    survey_name: str,
    units: SurveyUnits | None = None,
    source_pixel_scale_arcsec: float | None = None,
) -> Path:
    """Write one shard atomically (temp file + rename). images: float32 (N, C, H, W).

    `units` (survey.units) is stored as the `units` attribute; None measures these images as
    nanomaggies (the simulator's unit). `source_pixel_scale_arcsec`: the scale of the images ingest
    read, where it resampled them (an upload of an original file is assumed to be at that scale)."""
    path = Path(path)
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != len(bands):
        raise SurveyError(f"{path}: images must be (N, {len(bands)}, H, W), got {images.shape}")
    if images.shape[0] != len(catalog):
        raise SurveyError(f"{path}: {images.shape[0]} images but {len(catalog)} catalog rows")
    if units is None:
        units = measure(images, bands, ("nanomaggies",) * len(bands))
    elif units.bands != tuple(bands):
        raise UnitsError(f"{path}: units are for bands {units.bands}, the images have {tuple(bands)}")
    tmp = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    # track_times=False keeps the bytes identical for identical inputs (no timestamps in headers).
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["bands"] = ",".join(bands)
        f.attrs["pixel_scale_arcsec"] = float(pixel_scale_arcsec)
        f.attrs["survey_name"] = survey_name
        f.attrs["units"] = units.to_attr()
        if source_pixel_scale_arcsec is not None:
            f.attrs["source_pixel_scale_arcsec"] = float(source_pixel_scale_arcsec)
        n = images.shape[0]
        f.create_dataset(
            "images", data=images, chunks=(1, *images.shape[1:]) if n else None,
            compression="lzf" if n else None, track_times=False,
        )
        for name, values in catalog.columns.items():
            if values.dtype.kind in "OUS":
                f.create_dataset(name, data=values.astype(str).astype(object), dtype=_STR, track_times=False)
            else:
                f.create_dataset(name, data=values, track_times=False)
    os.replace(tmp, path)
    return path


class NativeSurvey:
    """Read side of a folder of native shards: the catalog in memory, pixels on demand.

    h5py handles are opened lazily and per process, so a DataLoader worker forked from a parent
    that already read pixels does not share the parent's HDF5 state.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if self.root.is_file():
            self.paths = [self.root]
        else:
            self.paths = sorted(self.root.glob(SHARD_GLOB))
        if not self.paths:
            raise SurveyError(f"{self.root}: no survey shards ({SHARD_GLOB}) found")
        cats, counts, units = [], [], []
        attrs = None
        for p in self.paths:
            try:
                with h5py.File(p, "r") as f:
                    a = (str(f.attrs["bands"]), float(f.attrs["pixel_scale_arcsec"]), str(f.attrs["survey_name"]))
                    shape = f["images"].shape
                    cols = {k: _read_col(f[k]) for k in f.keys() if k != "images"}
                    units.append(SurveyUnits.from_attr(f.attrs["units"]) if "units" in f.attrs else None)
                    source_scale = float(f.attrs.get("source_pixel_scale_arcsec", a[1]))
            except (OSError, KeyError, ValueError) as e:
                raise UnreadableCutout(str(p), f"not a readable skysift shard ({e})") from e
            if attrs is None:
                attrs, self.image_shape = a, tuple(shape[1:])
            elif a[:2] != attrs[:2] or tuple(shape[1:]) != self.image_shape:
                raise SurveyError(f"{p}: bands, pixel scale or image shape differ from {self.paths[0]}")
            cats.append(Catalog(cols))
            counts.append(shape[0])
        assert attrs is not None
        self.bands = tuple(attrs[0].split(","))
        self.pixel_scale_arcsec = attrs[1]
        self.survey_name = attrs[2]
        self.source_pixel_scale_arcsec = source_scale  # the ingested images' own scale (= pixel scale if not resampled)
        self.catalog = Catalog.concat(cats)
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()
        self._shard_units: list[SurveyUnits | None] = units
        self._units: SurveyUnits | None = None

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def units(self) -> SurveyUnits:
        """The survey's units and measured levels (survey.units). Shards written before units were
        recorded are measured here, on up to MAX_SAMPLE stamps, as nanomaggies."""
        if self._units is None:
            if any(u is None for u in self._shard_units):
                rows = np.linspace(0, len(self) - 1, min(MAX_SAMPLE, len(self))).astype(np.int64)
                self._units = measure(self.images(np.unique(rows)), self.bands, ("nanomaggies",) * len(self.bands))
            else:
                known = [u for u in self._shard_units if u is not None]
                self._units = combine(known, np.diff(self._offsets).tolist())
        return self._units

    def _file(self, shard: int) -> h5py.File:
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = h5py.File(self.paths[shard], "r")
        return f

    def images(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """float32 (len(rows), C, H, W) in the order given."""
        rows, out = image_rows(rows, len(self), self.image_shape)
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        for s in np.unique(shard):
            sel = np.nonzero(shard == s)[0]
            local = rows[sel] - self._offsets[s]
            order = np.argsort(local)
            # h5py fancy indexing needs increasing indices; read sorted, then scatter back.
            uniq, inverse = np.unique(local[order], return_inverse=True)
            block = self._file(int(s))["images"][uniq]
            out[sel[order]] = block[inverse]
        return out

    def read_range(self, start: int, stop: int, crop_px: int | None = None) -> np.ndarray:
        """float32 (stop - start, C, H, W): rows start..stop-1 as contiguous slices of each shard
        (what a whole-survey pass wants; far faster than `images` on a list of rows).

        crop_px: only the centred crop_px x crop_px square of each stamp, (stop - start, C, crop_px,
        crop_px), read straight into the output (top-left at ((H - crop_px) // 2, (W - crop_px) // 2),
        as encoder.preprocess.center_crop); ValueError when the stamps are smaller."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows {start}:{stop} out of range [0, {len(self)}]")
        c, h, w = self.image_shape
        if crop_px is None:
            top, left, (ch, cw) = 0, 0, (h, w)
        elif 0 < crop_px <= min(h, w):
            top, left, ch, cw = (h - crop_px) // 2, (w - crop_px) // 2, crop_px, crop_px
        else:
            raise ValueError(f"{self.root}: cannot crop {crop_px} px from {h}x{w} px stamps")
        out = np.empty((stop - start, c, ch, cw), dtype=np.float32)
        for s in range(len(self._offsets) - 1):
            lo, hi = max(start, int(self._offsets[s])), min(stop, int(self._offsets[s + 1]))
            if lo < hi:
                base = int(self._offsets[s])
                self._file(s)["images"].read_direct(out, np.s_[lo - base:hi - base, :, top:top + ch, left:left + cw],
                                                    np.s_[lo - start:hi - start])
        return out

    def cutout(self, row: int) -> Cutout:
        return Cutout(self.images([row])[0], str(self.catalog["object_id"][row]), float(self.catalog["ra"][row]),
                      float(self.catalog["dec"][row]), self.pixel_scale_arcsec, self.bands)

    def iter_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(rows, images) in row order; reads shard by shard so memory stays at one batch."""
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            yield rows, self.images(rows)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


def _read_col(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[()].astype(object)
    return ds[()]
