"""Cutouts from a large FITS mosaic (2-D image or (C, H, W) cube with a celestial WCS) at the
positions of a source list (CSV or Catalog with object_id, ra, dec, extra columns).

Cutouts are cut with astropy `Cutout2D` in mode='partial': a source near the edge gets a full
size_px x size_px stamp whose pixels off the mosaic are NaN. NaN therefore means "off-image" (or
already NaN in the mosaic: masked), and the catalog column `off_image_fraction` says how much of
each stamp lies off the image. A source entirely off the image cannot give a cutout: `cutout(i)`
raises OffImage for it (ingest rejects and records it). Columns `x_px`, `y_px` hold the 0-based
pixel position of each source on the mosaic. With an odd size_px the source sits on the central
pixel; with an even one the centre falls between pixels and Cutout2D rounds the position.

The mosaic is memory-mapped, so only the pixels of the cutouts asked for are read.

    m = Mosaic("coadd.fits", "sources.csv", size_px=64)
    m.cutout(0).pixels            # (C, 64, 64) float32
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.nddata.utils import overlap_slices

from ..catalog import Catalog
from ..cutout import Cutout
from .common import check_pixels
from .csv_catalog import read_csv_catalog
from .errors import (
    BandMismatch,
    CalibrationError,
    CorruptFile,
    LayoutMismatch,
    OffImage,
    WrongBandCount,
)
from .fits_header import band_names, celestial_wcs, pixel_scale


class Mosaic:
    def __init__(
        self,
        image: Path | str,
        sources: Path | str | Catalog,
        *,
        size_px: int,
        hdu: int | None = None,
        bands: tuple[str, ...] | None = None,
    ) -> None:
        if size_px <= 0:
            raise ValueError(f"size_px must be positive, got {size_px}")
        self.path = Path(image)
        self.source = str(self.path)
        self.size_px = int(size_px)
        self._hdul, self.hdu = _open(self.path, hdu)
        header = self._hdul[self.hdu].header
        naxis = int(header["NAXIS"])
        if naxis not in (2, 3):
            raise LayoutMismatch(
                self.source, f"HDU {self.hdu} has {naxis} axes; a mosaic is 2-D or a (C, H, W) cube"
            )
        n_planes = int(header["NAXIS3"]) if naxis == 3 else 1
        self.wcs = celestial_wcs(header, str(self.source))
        if self.wcs is None:
            raise CalibrationError(
                self.source,
                f"HDU {self.hdu} has no celestial WCS: cannot place sources on the mosaic",
            )
        scale = pixel_scale(header, self.wcs, self.source)
        assert scale is not None  # a celestial WCS always gives one
        self.pixel_scale_arcsec = scale
        self.bands = _bands(header, n_planes, bands, self.source)
        self.shape_hw = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        cat = sources if isinstance(sources, Catalog) else read_csv_catalog(sources)
        x, y = self.wcs.world_to_pixel_values(cat["ra"], cat["dec"])
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        off = np.array([self._off_fraction(xi, yi) for xi, yi in zip(x, y, strict=True)])
        self.catalog = Catalog({**cat.columns, "x_px": x, "y_px": y, "off_image_fraction": off})

    def __len__(self) -> int:
        return len(self.catalog)

    def cutout(self, i: int) -> Cutout:
        """Source i as a (C, size_px, size_px) float32 Cutout, NaN off the image."""
        oid = str(self.catalog["object_id"][i])
        ra, dec = float(self.catalog["ra"][i]), float(self.catalog["dec"][i])
        if self.catalog["off_image_fraction"][i] >= 1.0:
            raise OffImage(
                self.source,
                f"position ({ra:.6f}, {dec:.6f}) deg is entirely off the "
                f"{self.shape_hw[1]}x{self.shape_hw[0]} px mosaic",
                oid,
            )
        pos = (float(self.catalog["x_px"][i]), float(self.catalog["y_px"][i]))
        data = self._hdul[self.hdu].data
        planes = data[None] if data.ndim == 2 else data
        out = np.full((len(self.bands), self.size_px, self.size_px), np.nan, dtype=np.float32)
        fill = np.nan if planes.dtype.kind == "f" else 0  # NaN does not fit an integer array
        for c in range(len(self.bands)):
            cut = Cutout2D(
                planes[c],
                pos,
                (self.size_px, self.size_px),
                mode="partial",
                fill_value=fill,
                copy=True,
            )
            # Only the overlap is copied, so off-image pixels stay NaN whatever the data type.
            out[c][cut.slices_cutout] = cut.data[cut.slices_cutout]
        check_pixels(out, self.source, oid, self.bands)
        return Cutout(out, oid, ra, dec, self.pixel_scale_arcsec, self.bands)

    def __iter__(self) -> Iterator[Cutout]:
        for i in range(len(self)):
            yield self.cutout(i)

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self) -> Mosaic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _off_fraction(self, x: float, y: float) -> float:
        if not (np.isfinite(x) and np.isfinite(y)):
            return 1.0
        try:
            _, small = overlap_slices(
                self.shape_hw, (self.size_px, self.size_px), (y, x), mode="partial"
            )
        except NoOverlapError:
            return 1.0
        covered = (small[0].stop - small[0].start) * (small[1].stop - small[1].start)
        return 1.0 - covered / self.size_px**2


def _open(path: Path, hdu: int | None) -> tuple[fits.HDUList, int]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, memmap=True, lazy_load_hdus=True)
            len(hdul)  # read every header so truncation shows now
        except (OSError, ValueError, TypeError) as e:
            raise CorruptFile(
                str(path), f"not a readable FITS file (truncated or corrupt?): {e}"
            ) from e
    if any("truncated" in str(w.message).lower() for w in caught):
        hdul.close()
        raise CorruptFile(str(path), "FITS file is truncated")
    if hdu is None:
        hdu = next(
            (i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2), None
        )
        if hdu is None:
            hdul.close()
            raise LayoutMismatch(str(path), "no image HDU with 2-D or 3-D data")
    elif not 0 <= hdu < len(hdul):
        hdul.close()
        raise LayoutMismatch(str(path), f"no HDU {hdu} (file has {len(hdul)})")
    return hdul, hdu


def _bands(
    header: fits.Header, n: int, given: tuple[str, ...] | None, source: str
) -> tuple[str, ...]:
    named = band_names(header, n)
    if given is not None:
        given = tuple(given)
        if len(given) != n:
            raise WrongBandCount(
                source, f"mosaic has {n} plane(s), expected {len(given)} bands {given}"
            )
        if named is not None and named != given:
            raise BandMismatch(source, f"header bands {named} differ from expected {given}")
        return given
    if named is None:
        raise CalibrationError(source, "no band name (BAND/FILTER/BANDS key); pass bands=")
    if len(named) != n:
        raise WrongBandCount(source, f"header names {len(named)} band(s) {named} for {n} plane(s)")
    return named
