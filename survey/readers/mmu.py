"""Multimodal Universe (MMU; arXiv:2412.02527) image datasets: HEALPix-partitioned HDF5 files.

Layout, as the MMU build scripts write it (scripts/legacysurvey, scripts/ssl_legacysurvey):

    <root>/<sample>/healpix=<N>/001-of-001.hdf5     # N: nested HEALPix pixel at nside 16

Each file holds N objects as datasets of N rows: `object_id` (integers for ssl_legacysurvey, strings
such as "<BRICKNAME>-<OBJID>" for legacysurvey DR10), `ra`, `dec` (or `RA`, `DEC`), `image_array
(N, C, H, W) float32`, `image_band (N, C)` ("des-g", "des-r", ...), optional `image_scale (N, C)`
arcsec/px, `image_psf_fwhm (N, C)`, `image_ivar (N, C, H, W)`, `image_mask`, `healpix`, and the
catalogue columns (`z_spec`, `ebv`, `flux_g`, ...). `ssl_legacysurvey` is Stein et al.'s DECaLS
sample in this layout.

Mapping onto skysift (DESIGN.md §3):
- `source` is the root (every `**/healpix=*/*.hdf5` under it, in (path, pixel number) order), one
  sample folder, or one .hdf5 file.
- object ids: `object_id` as a decimal string or the stored string; unique over all files.
- bands: `image_band` lower-cased, with a prefix shared by every band ("des-") dropped: des-g,
  des-r, des-z -> g, r, z (what the Legacy Survey encoders are trained on). Every object carries
  its own `image_band` row; one that differs from the first object's is rejected (BandMismatch).
- pixel scale: `image_scale`, which must agree across an object's bands (else CalibrationError for
  that object); without `image_scale` the caller's `pixel_scale_arcsec`, else 0.262"/px for Legacy
  Survey data, else CalibrationError. Objects at different scales: `pixel_scale_arcsec` is None
  and ingest asks for an output scale.
- units: nanomaggies for Legacy Survey data (a "legacysurvey" path or DES-filter bands, the Legacy
  Survey coadds' calibration), otherwise "flux" (pass units= to name it).
- pixels: as stored, except that a pixel whose `image_ivar` is 0 (no exposure: off the coadd) is
  NaN, masked in the sense of Cutout. `image_mask` is not applied: its sense differs between MMU
  datasets (legacysurvey stores True for a clean pixel).
- catalogue: every other (N,) dataset is a column (`healpix` renamed `mmu_healpix`: skysift's own
  `healpix` column is the cone-search index at another nside); (N, C) datasets become per-band
  columns, `image_psf_fwhm` -> `psf_fwhm_g`, ...; columns missing from some files are left out and
  named in `notes`; datasets of other shapes (ivar, mask) are listed in `ignored_keys`.

Whole-input problems (a file that is not HDF5, a missing dataset, a shape that is not the layout,
files with other bands, duplicate ids, a pixel number that contradicts the folder) raise when the
reader opens; a NaN-only stamp or an object's odd bands or scales reject that object only.

    with MmuReader("data/ssl_legacysurvey") as r:
        r.bands, r.catalog["z_spec"], r.images([0, 1])   # ('g', 'r', 'z'), ..., (2, 3, 152, 152)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np

from ..catalog import Catalog
from ..cutout import Cutout
from .common import check_pixels, check_positions, image_rows, int_strings
from .errors import (
    BandMismatch,
    CalibrationError,
    CorruptFile,
    DuplicateObjectId,
    LayoutMismatch,
    MissingKey,
    WrongBandCount,
)

LEGACY_SURVEY_SCALE = 0.262  # arcsec/px of the Legacy Survey coadds (DECam, 90Prime, Mosaic-3)
IMAGE_KEYS = ("image_array", "image_band", "image_scale", "image_ivar", "image_mask")
RENAMES = {"healpix": "mmu_healpix", "image_psf_fwhm": "psf_fwhm", "RA": "ra", "DEC": "dec"}
_PIXEL_DIR = re.compile(r"^healpix=(\d+)$")


class MmuReader:
    """Read side of an MMU image dataset; `catalog` in file order, pixels sliced on demand.

    Attributes: `files`, `bands`, `raw_bands`, `pixel_scale_arcsec` (None when objects differ),
    `image_shape` (None when files differ), `units`, `survey_name`, `catalog`, `ignored_keys`, `notes`.
    """

    def __init__(self, source: Path | str, pixel_scale_arcsec: float | None = None) -> None:
        self.root = Path(source)
        self.source = str(self.root)
        self.files = find_files(self.root)
        self.notes: list[str] = []
        self._pid, self._open = os.getpid(), (-1, None)  # one file handle at a time: MMU has thousands
        first_bands: tuple[str, ...] | None = None
        shapes: set[tuple[int, ...]] = set()
        per_file: list[dict[str, np.ndarray]] = []
        rows_bands: list[np.ndarray] = []
        scales: list[np.ndarray] = []
        has_ivar: list[bool] = []
        ignored: set[str] = set()
        for path in self.files:
            src = str(path)
            with _open(path) as f:
                n, shape, bands = _check_layout(f, src)
                if n and first_bands is None:
                    first_bands = tuple(bands[0])
                elif n and first_bands is not None and tuple(bands[0]) != first_bands:
                    error = WrongBandCount if len(bands[0]) != len(first_bands) else BandMismatch
                    raise error(src, f"'image_band' is {','.join(bands[0])}, the first file's "
                                     f"{','.join(first_bands)}: one dataset has one set of bands")
                if n:
                    shapes.add(shape)
                cols, skipped = _columns(f, n, len(bands[0]) if n else 0, src)
                ignored |= skipped
                scales.append(_scales(f, n, src))
                has_ivar.append("image_ivar" in f and f["image_ivar"].shape == f["image_array"].shape)
                _check_pixel_dir(path, cols.get("mmu_healpix"), src)
            per_file.append(cols)
            rows_bands.append(bands)
        self.counts = np.array([len(c["object_id"]) for c in per_file], dtype=np.int64)
        if not self.counts.sum():
            raise LayoutMismatch(self.source, f"{len(self.files)} MMU file(s) but no object in any of them")
        assert first_bands is not None
        self.raw_bands = first_bands
        self.bands = normalise_bands(first_bands)
        self._row_bands = np.concatenate(rows_bands)  # (N, C) raw names per object
        self._scales = np.concatenate(scales)  # (N, C) arcsec/px, NaN where the files give none
        self._ivar = has_ivar
        self._file_of = np.repeat(np.arange(len(self.files)), self.counts)
        self._start = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.image_shape: tuple[int, int, int] | None = shapes.pop() if len(shapes) == 1 else None  # type: ignore[assignment]
        self.ignored_keys = sorted(ignored)
        self.catalog = self._catalog(per_file)
        self.pixel_scale_arcsec = self._pixel_scale(pixel_scale_arcsec)
        self.units = "nanomaggies" if self._legacy_survey() else "flux"
        self.survey_name = f"mmu:{self.root.name}"
        if self.raw_bands != self.bands:
            self.notes.append(f"MMU bands {','.join(self.raw_bands)} named {','.join(self.bands)}")
        if any(has_ivar):
            self.notes.append("pixels with image_ivar == 0 (no exposure) set to NaN")
        if self.ignored_keys:
            self.notes.append(f"not catalogue columns (not one value or one per band per object): "
                              f"{', '.join(self.ignored_keys)}")

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.catalog)

    def source_of(self, row: int) -> str:
        return str(self.files[int(self._file_of[row])])

    def images(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """float32 (len(rows), C, H, W) in the order given (needs one stamp shape: `image_shape`)."""
        if self.image_shape is None:
            raise LayoutMismatch(self.source, "stamps differ in size between files; read them with cutout()")
        rows, out = image_rows(rows, len(self), self.image_shape, self.source)
        files = self._file_of[rows]
        for k in np.unique(files):
            sel = np.nonzero(files == k)[0]
            out[sel] = self._read(int(k), rows[sel] - self._start[k])
        return out

    def cutout(self, row: int, pixels: np.ndarray | None = None) -> Cutout:
        """One object; BandMismatch, CalibrationError or EmptyStamp (naming it) when it cannot be used.

        pixels: this row's (C, H, W) if already read in a batch."""
        oid, src = str(self.catalog["object_id"][row]), self.source_of(row)
        raw = tuple(self._row_bands[row])
        if raw != self.raw_bands:
            raise BandMismatch(src, f"image_band {','.join(raw)}, the survey's are {','.join(self.raw_bands)}", oid)
        scale = self._scales[row]
        if not np.isfinite(scale).all() or (scale <= 0).any() or np.ptp(scale) > 1e-6 * scale.max():
            raise CalibrationError(src, f"image_scale {scale.tolist()} arcsec/px: not one positive scale "
                                        "for all bands", oid)
        if pixels is None:
            k = int(self._file_of[row])
            pixels = self._read(k, np.array([row - self._start[k]]))[0]
        check_pixels(pixels, src, oid, self.bands)
        return Cutout(pixels, oid, float(self.catalog["ra"][row]), float(self.catalog["dec"][row]),
                      float(scale[0]), self.bands)

    def close(self) -> None:
        k, f = self._open
        if f is not None:
            f.close()
        self._open = (-1, None)

    def __enter__(self) -> MmuReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _read(self, k: int, local: np.ndarray) -> np.ndarray:
        """Rows `local` (increasing or not) of file k as float32 (n, C, H, W), ivar == 0 -> NaN."""
        if self._open[0] != k or self._pid != os.getpid():  # a forked reader opens its own handle
            self.close()
            self._pid, self._open = os.getpid(), (k, _open(self.files[k]))
        f = self._open[1]
        assert f is not None
        uniq, inverse = np.unique(local, return_inverse=True)
        # contiguous rows: one hyperslab read; otherwise h5py's fancy indexing (increasing indices)
        sel = slice(int(uniq[0]), int(uniq[-1]) + 1) if uniq[-1] - uniq[0] + 1 == len(uniq) else uniq
        try:
            block = np.asarray(f["image_array"][sel], dtype=np.float32)
            if self._ivar[k]:
                block[np.asarray(f["image_ivar"][sel]) == 0] = np.nan
        except (OSError, ValueError) as e:
            raise CorruptFile(str(self.files[k]), f"cannot read image rows {uniq[0]}..{uniq[-1]}: {e}") from e
        return block[inverse]

    def _catalog(self, per_file: list[dict[str, np.ndarray]]) -> Catalog:
        ids = np.concatenate([c["object_id"] for c in per_file])
        _check_unique(ids, self._file_of, self.files)
        common = set.intersection(*(set(c) for c in per_file if len(c["object_id"])))
        partial = sorted(set().union(*per_file) - common)
        if partial:
            self.notes.append(f"columns left out (missing from some files): {', '.join(partial)}")
        cols: dict[str, np.ndarray] = {"object_id": ids}
        dec = np.concatenate([c["dec"] for c in per_file]).astype(np.float64)
        ra = np.concatenate([c["ra"] for c in per_file]).astype(np.float64)
        cols["ra"] = check_positions(ids, ra, dec, self.source)
        cols["dec"] = dec
        for name in sorted(common - {"object_id", "ra", "dec"}):
            cols[name] = np.concatenate([c[name] for c in per_file])
        return Catalog(cols)

    def _pixel_scale(self, given: float | None) -> float | None:
        """The one scale of every object, or None; fills the rows of files without image_scale."""
        unrecorded = np.isnan(self._scales).all(axis=1)
        recorded = self._scales[~unrecorded]
        values = np.unique(recorded[np.isfinite(recorded)])
        if given is not None and len(values) and not np.allclose(values, given, rtol=1e-6):
            raise CalibrationError(self.source, f"image_scale says {values.tolist()[:3]} arcsec/px, "
                                                f"source_pixel_scale_arcsec= {given}")
        if unrecorded.any():
            if given is None and self._legacy_survey():
                given = LEGACY_SURVEY_SCALE
                self.notes.append(f"no image_scale: Legacy Survey data taken at {LEGACY_SURVEY_SCALE} arcsec/px")
            if given is None:
                missing = self.files[int(self._file_of[int(unrecorded.argmax())])]
                raise CalibrationError(str(missing), "no image_scale dataset and no pixel scale given; pass "
                                                     "source_pixel_scale_arcsec=")
            self._scales[unrecorded] = given
            values = np.unique(np.append(values, given))
        if len(values) and np.ptp(values) <= 1e-6 * values.max():
            return float(values[0])
        return None

    def _legacy_survey(self) -> bool:
        in_path = any("legacysurvey" in part.lower() for part in self.root.resolve().parts)
        return in_path or all(b.lower().startswith("des-") for b in self.raw_bands)


def find_files(root: Path) -> list[Path]:
    """The dataset's HDF5 files: `root` itself, or every `healpix=<N>/*.hdf5` below it, ordered by
    the path above the pixel folder, the pixel number, then the file name."""
    if root.is_file():
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    found = [p for p in root.rglob("*.hdf5") if _PIXEL_DIR.match(p.parent.name)]
    if not found:
        raise LayoutMismatch(str(root), "no MMU files (<sample>/healpix=<N>/*.hdf5) under this folder")

    def key(p: Path) -> tuple[str, int, str]:
        m = _PIXEL_DIR.match(p.parent.name)
        assert m is not None
        return (p.parent.parent.as_posix(), int(m.group(1)), p.name)

    return sorted(found, key=key)


def normalise_bands(raw: tuple[str, ...]) -> tuple[str, ...]:
    """('DES-G', 'des-r', 'des-z') -> ('g', 'r', 'z'): lower case, a prefix shared by all dropped."""
    names = tuple(b.strip().lower() for b in raw)
    prefixes = {n.rsplit("-", 1)[0] for n in names if "-" in n}
    if len(prefixes) == 1 and all("-" in n for n in names):
        short = tuple(n.rsplit("-", 1)[1] for n in names)
        if all(short) and len(set(short)) == len(short):
            return short
    return names


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise
    except OSError as e:  # h5py reports truncation and bad signatures as OSError
        raise CorruptFile(str(path), f"not a readable HDF5 file (truncated or corrupt?): {e}") from e


def _dataset(f: h5py.File, *names: str) -> h5py.Dataset | None:
    for name in names:
        if name in f and isinstance(f[name], h5py.Dataset):
            return f[name]
    return None


def _check_layout(f: h5py.File, src: str) -> tuple[int, tuple[int, ...], np.ndarray]:
    """(objects, stamp shape (C, H, W), image_band (N, C) as str) of one file, or a named error."""
    missing = [k for k, alts in (("object_id", ()), ("ra", ("RA",)), ("dec", ("DEC",)), ("image_array", ()),
                                 ("image_band", ())) if _dataset(f, k, *alts) is None]
    if missing:
        raise MissingKey(src, f"missing dataset(s) {missing} of the MMU image layout (found {sorted(f.keys())})")
    images, bands = f["image_array"], f["image_band"]
    n = f["object_id"].shape[0] if f["object_id"].ndim else -1
    for ds in (f["object_id"], _dataset(f, "ra", "RA"), _dataset(f, "dec", "DEC")):
        assert ds is not None
        if ds.shape not in ((n,), (n, 1)):
            raise LayoutMismatch(src, f"{ds.name.lstrip('/')!r} must have one value per object ({n}), got {ds.shape}")
    if images.ndim != 4 or images.shape[0] != n:
        raise LayoutMismatch(src, f"'image_array' must be ({n}, C, H, W), got shape {images.shape}")
    if bands.shape != images.shape[:2]:
        hint = " (image_array looks channels-last)" if bands.ndim == 2 and images.shape[3] == bands.shape[1] else ""
        raise WrongBandCount(src, f"'image_band' has shape {bands.shape}, 'image_array' {images.shape}: "
                                  f"one band name per image plane expected{hint}")
    try:
        names = np.array([[_text(b) for b in row] for row in bands[()]], dtype=object)
    except (OSError, UnicodeDecodeError) as e:
        raise CorruptFile(src, f"cannot read 'image_band': {e}") from e
    return n, tuple(images.shape[1:]), names.reshape(n, images.shape[1])


def _scales(f: h5py.File, n: int, src: str) -> np.ndarray:
    """(N, C) arcsec/px from image_scale ((N, C) or (N,)); NaN rows when the file has none."""
    c = f["image_array"].shape[1]
    if "image_scale" not in f:
        return np.full((n, c), np.nan)
    s = np.asarray(f["image_scale"][()], dtype=np.float64)
    if s.shape == (n,):
        s = np.repeat(s[:, None], c, axis=1)
    if s.shape != (n, c):
        raise LayoutMismatch(src, f"'image_scale' must be ({n}, {c}) or ({n},), got {s.shape}")
    return s


def _columns(f: h5py.File, n: int, n_bands: int, src: str) -> tuple[dict[str, np.ndarray], set[str]]:
    """Catalogue columns of one file (renamed, per-band ones split) and the names of the datasets left out."""
    band_names = normalise_bands(tuple(_text(b) for b in f["image_band"][0])) if n else ()
    cols: dict[str, np.ndarray] = {}
    ignored: set[str] = set()
    for key in f.keys():
        ds = f[key]
        if key in IMAGE_KEYS:
            if key in ("image_ivar", "image_mask"):
                ignored.add(key)
            continue
        if not isinstance(ds, h5py.Dataset) or ds.ndim == 0 or ds.shape[0] != n or ds.ndim > 2:
            ignored.add(key)
            continue
        try:
            values = ds.asstr()[()].astype(object) if h5py.check_string_dtype(ds.dtype) else ds[()]
        except (OSError, UnicodeDecodeError) as e:
            raise CorruptFile(src, f"cannot read dataset {key!r}: {e}") from e
        if values.dtype.kind == "S":  # fixed-length bytes without h5py's string tag (DR10's TYPE)
            values = np.char.decode(values, "utf-8", "replace").astype(object)
        name = RENAMES.get(key, key)
        if key == "object_id":
            cols[name] = int_strings(values.reshape(n), key, src)
        elif values.ndim == 1 or values.shape[1:] == (1,):
            cols[name] = values.reshape(n)
        elif values.shape[1] == n_bands and n_bands:
            for i, band in enumerate(band_names):
                cols[f"{name}_{band}"] = values[:, i]
        else:
            ignored.add(key)
    if n == 0:  # an empty file: ids and positions only, so it narrows no column set
        cols = {k: cols[k] for k in ("object_id", "ra", "dec") if k in cols}
    return cols, ignored


def _check_pixel_dir(path: Path, pixels: np.ndarray | None, src: str) -> None:
    """A file's `healpix` values must be the pixel its folder names (healpix=<N>)."""
    m = _PIXEL_DIR.match(path.parent.name)
    if m is None or pixels is None or not len(pixels):
        return
    values = np.asarray(pixels)
    if values.dtype.kind not in "iuf" or np.any(values != int(m.group(1))):
        other = values[values != int(m.group(1))][:3].tolist() if values.dtype.kind in "iuf" else values[:3]
        raise LayoutMismatch(src, f"'healpix' holds {other} but the file is in folder {path.parent.name}")


def _check_unique(ids: np.ndarray, file_of: np.ndarray, files: list[Path]) -> None:
    values, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts == 1).all():
        return
    dup = values[counts > 1]
    where = {str(files[int(file_of[i])]) for i in np.nonzero(np.isin(ids.astype(str), dup[:5]))[0]}
    shown = ", ".join(f"{v!r} x{c}" for v, c in zip(dup[:5].tolist(), counts[counts > 1][:5].tolist(), strict=True))
    raise DuplicateObjectId(", ".join(sorted(where)), f"{len(dup)} duplicate object id(s): {shown}")


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
