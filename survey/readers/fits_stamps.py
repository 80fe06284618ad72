"""FITS stamps: a folder of FITS files (one object per file; sub-folders are searched too, in
sorted order of the relative path) or one file with one image HDU per object, as `Cutout`
records. Stamps may differ in size, so they come back one by one, not as one array;
`survey.readers.resize.to_common` brings them to one size and pixel scale. (One file per band
of an object: survey.readers.fits_bands.)

A 2-D image is one band; a 3-D cube is (C, H, W). Where each fact comes from, first match wins:
  object id      GalSim catalog IDENT > header key in `id_keys` (ID, OBJID, OBJECT, NAME)
                 > "<file path relative to the folder, without extension>/<hdu index>"
  position       GalSim catalog RA/DEC > WCS at the stamp centre > RA/DEC header keys
  pixel scale    WCS (astropy proj_plane_pixel_scales) > PIXSCALE-like key > GalSim PIXEL_SCALE
                 > the `pixel_scale_arcsec` argument
  bands          BANDS / BAND1..n / BAND / FILTER / HST FILTER1-2 keys > GalSim BAND > `bands`
The catalog decides what describes the object; the header decides what describes the pixels; the
arguments are the last resort. A stamp whose pixel scale, position or band names cannot be found
raises CalibrationError naming the file and HDU: a layout without WCS (the GalSim COSMOS images
file has none) needs `galsim_catalog=` or `pixel_scale_arcsec=`, and guessing would put wrong
physical sizes into the index.

Pixels are returned as float32 in native byte order, in the file's units (HST: e-/s); NaN passes
through as masked pixels.

    stamps = FitsStamps("real_galaxy_images_23.5_n1.fits",
                        galsim_catalog="real_galaxy_catalog_23.5.fits")
    cutouts = list(stamps)          # or stamps.read(i); stamps.catalog has ids and positions
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..catalog import Catalog
from ..cutout import Cutout
from .common import check_pixels, check_positions, check_unique_ids, list_files
from .errors import (
    BandMismatch,
    CalibrationError,
    CorruptFile,
    LayoutMismatch,
    WrongBandCount,
)
from .fits_header import band_names, celestial_wcs, centre_position, pixel_scale
from .galsim_catalog import read_galsim_catalog

ID_KEYS = ("ID", "OBJID", "OBJECT", "NAME")
SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


@dataclass(frozen=True)
class StampRef:
    """Where one stamp lives and what its headers (or the catalog) say about it."""

    path: Path
    hdu: int
    object_id: str
    ra_deg: float
    dec_deg: float
    pixel_scale_arcsec: float
    bands: tuple[str, ...] | None  # None: no names found; the `bands` argument supplies them
    shape: tuple[int, int, int]  # (C, H, W)
    bunit: str = ""  # the header's BUNIT, if any

    @property
    def source(self) -> str:
        return f"{self.path}[{self.hdu}]"


class FitsStamps:
    """Stamps in a FITS file or a folder of FITS files; headers read at once, pixels on demand.

    Opening raises CorruptFile (truncated/garbage file), LayoutMismatch (no image HDU, 1-D or 4-D
    data), CalibrationError and DuplicateObjectId. `read(i)` raises EmptyStamp (a NaN-only band)
    and BandMismatch/WrongBandCount (planes differ from `bands`) for that object only. Files in a
    folder without any image HDU (e.g. a catalog table) are listed in `skipped_files`.
    """

    def __init__(
        self,
        source: Path | str,
        *,
        pixel_scale_arcsec: float | None = None,
        bands: tuple[str, ...] | None = None,
        galsim_catalog: Path | str | Catalog | None = None,
        id_keys: tuple[str, ...] = ID_KEYS,
    ) -> None:
        self.source = Path(source)
        self.expected_bands = tuple(bands) if bands is not None else None
        self._fallback_scale = pixel_scale_arcsec
        self._id_keys = id_keys
        gal = galsim_catalog
        if gal is not None and not isinstance(gal, Catalog):
            gal = read_galsim_catalog(gal)
        self._gal = gal
        self._gal_rows = (
            {}
            if gal is None
            else {
                (str(f), int(h)): i
                for i, (f, h) in enumerate(zip(gal["gal_filename"], gal["gal_hdu"], strict=True))
            }
        )
        self.skipped_files: list[tuple[Path, str]] = []
        self.refs: list[StampRef] = []
        for path in self._files():
            headers = _scan(path)
            if not headers:
                if self.source.is_dir():
                    self.skipped_files.append((path, "no image HDU"))
                    continue
                raise LayoutMismatch(str(path), "no image HDU with 2-D or 3-D data")
            self.refs += [self._ref(path, hdu, header) for hdu, header in headers]
        if not self.refs:
            raise LayoutMismatch(str(self.source), "no FITS stamps found")
        ids = np.array([r.object_id for r in self.refs], dtype=object)
        check_unique_ids(ids, str(self.source))
        ra = check_positions(
            ids, [r.ra_deg for r in self.refs], [r.dec_deg for r in self.refs], str(self.source)
        )
        cols = {
            "object_id": ids,
            "ra": ra,
            "dec": np.array([r.dec_deg for r in self.refs]),
            "file": np.array([self._rel(r.path) for r in self.refs], dtype=object),
            "hdu": np.array([r.hdu for r in self.refs], dtype=np.int64),
            "native_pixel_scale_arcsec": np.array([r.pixel_scale_arcsec for r in self.refs]),
        }
        self.catalog = Catalog(cols)
        self._open: tuple[Path, fits.HDUList] | None = None

    def __len__(self) -> int:
        return len(self.refs)

    def source_of(self, i: int) -> str:
        return self.refs[i].source

    def read(self, i: int) -> Cutout:
        """Stamp i as a Cutout (C, H, W) float32."""
        ref = self.refs[i]
        pixels = self._pixels(ref)
        bands = ref.bands
        if self.expected_bands is not None:
            if pixels.shape[0] != len(self.expected_bands):
                raise WrongBandCount(
                    ref.source,
                    f"{pixels.shape[0]} image plane(s), expected "
                    f"{len(self.expected_bands)} bands {self.expected_bands}",
                    ref.object_id,
                )
            if bands is not None and bands != self.expected_bands:
                raise BandMismatch(
                    ref.source,
                    f"bands {bands} in header, expected {self.expected_bands}",
                    ref.object_id,
                )
            bands = self.expected_bands
        assert bands is not None  # _ref raised CalibrationError otherwise
        check_pixels(pixels, ref.source, ref.object_id, bands)
        return Cutout(pixels, ref.object_id, float(self.catalog["ra"][i]), ref.dec_deg, ref.pixel_scale_arcsec, bands)

    def __iter__(self) -> Iterator[Cutout]:
        try:
            for i in range(len(self)):
                yield self.read(i)
        finally:
            self.close()

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    # -- internals ----------------------------------------------------------------------------
    def _files(self) -> list[Path]:
        if not self.source.exists():
            raise FileNotFoundError(f"{self.source}: no such file or folder")
        if self.source.is_file():
            return [self.source]
        return [self.source / rel for rel in list_files(self.source, SUFFIXES)]

    def _rel(self, path: Path) -> str:
        """The file's path relative to the folder (its name for a single file)."""
        return path.name if self.source.is_file() else path.relative_to(self.source).as_posix()

    def _ref(self, path: Path, hdu: int, header: fits.Header) -> StampRef:
        shape = _shape(header, f"{path}[{hdu}]")
        where = f"{path}[{hdu}]"
        g = self._gal_rows.get((path.name, hdu))
        oid = str(self._gal["object_id"][g]) if g is not None else _header_id(header, self._id_keys)
        oid = oid or f"{_stem(Path(self._rel(path)))}/{hdu}"
        wcs = celestial_wcs(header, where, oid)
        pos = None
        if g is not None:
            pos = float(self._gal["ra"][g]), float(self._gal["dec"][g])
        pos = pos or centre_position(header, wcs, shape[1:], where, oid)
        if pos is None:
            raise CalibrationError(
                where,
                "no sky position: no celestial WCS, no RA/DEC keys and "
                "no catalog row (pass galsim_catalog=)",
                oid,
            )
        scale = pixel_scale(header, wcs, where, oid)
        if scale is None and g is not None:
            scale = float(self._gal["pixel_scale"][g])
        scale = scale or self._fallback_scale
        if scale is None:
            raise CalibrationError(
                where,
                "no pixel scale: no celestial WCS or PIXSCALE key, no "
                "catalog row; pass pixel_scale_arcsec= or galsim_catalog=",
                oid,
            )
        bands = band_names(header, shape[0])
        if bands is None and g is not None and "band" in self._gal and shape[0] == 1:
            bands = (str(self._gal["band"][g]),)
        if bands is not None and len(bands) != shape[0]:
            raise WrongBandCount(
                where,
                f"header names {len(bands)} band(s) {bands} for {shape[0]} image plane(s)",
                oid,
            )
        if bands is None and self.expected_bands is None:
            raise CalibrationError(
                where, "no band name (BAND/FILTER/BANDS key or catalog); pass bands=", oid
            )
        bunit = str(header.get("BUNIT", "") or "").strip()
        return StampRef(path, hdu, oid, pos[0], pos[1], float(scale), bands, shape, bunit)

    def _pixels(self, ref: StampRef) -> np.ndarray:
        if self._open is None or self._open[0] != ref.path:
            self.close()  # one open file at a time: stamps are read in file order
            self._open = (ref.path, fits.open(ref.path, memmap=False, lazy_load_hdus=True))
        try:
            data = self._open[1][ref.hdu].data
            pixels = np.asarray(data, dtype=np.float32)  # also big-endian -> native order
        except (OSError, ValueError, TypeError, IndexError) as e:
            raise CorruptFile(ref.source, f"cannot read pixels: {e}", ref.object_id) from e
        if pixels.ndim == 2:
            pixels = pixels[None]
        if pixels.shape != ref.shape:
            raise LayoutMismatch(
                ref.source,
                f"data shape {pixels.shape} differs from header {ref.shape}",
                ref.object_id,
            )
        return pixels


def read_fits_stamps(source: Path | str, **kwargs: object) -> list[Cutout]:
    """All stamps of a FITS file or folder as Cutouts (see FitsStamps for the arguments)."""
    return list(FitsStamps(source, **kwargs))  # type: ignore[arg-type]


def _scan(path: Path) -> list[tuple[int, fits.Header]]:
    """(hdu index, header) of every image HDU with data; CorruptFile if truncated or garbage."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                len(hdul)  # reads every header now, so truncation shows before any pixel is used
                out = [
                    (i, h.header.copy())
                    for i, h in enumerate(hdul)
                    if isinstance(h, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU)
                    and h.header.get("NAXIS", 0) > 0
                ]
        except (OSError, ValueError, TypeError, IndexError) as e:
            raise CorruptFile(
                str(path), f"not a readable FITS file (truncated or corrupt?): {e}"
            ) from e
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
    if truncated:
        raise CorruptFile(str(path), f"FITS file is truncated: {truncated[0]}")
    return out


def _shape(header: fits.Header, where: str) -> tuple[int, int, int]:
    naxis = int(header["NAXIS"])
    dims = [int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1)]  # numpy order: slowest first
    if naxis == 2:
        return (1, dims[0], dims[1])
    if naxis == 3:
        return (dims[0], dims[1], dims[2])
    raise LayoutMismatch(
        where, f"image data has {naxis} axes {tuple(dims)}; a stamp is 2-D (H, W) or 3-D (C, H, W)"
    )


def _header_id(header: fits.Header, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        v = header.get(key)
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def _stem(path: Path) -> str:
    """The path without its FITS extension (sub/obj.fits.gz -> sub/obj)."""
    name = path.as_posix()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.with_suffix("").as_posix()
