"""FITS band files: each object is one single-band 2-D FITS image per band (`--band-files`).

    stamps = FitsBandFiles("cutouts/", "{id}_{band}.fits", ("g", "r", "z"))   # obj1_g.fits, ...
    stamps = FitsBandFiles("cutouts/", "{band}/{id}.fits", ("g", "r", "z"))   # g/obj1.fits, ...

The folder and its sub-folders are searched (survey.readers.band_files); the objects are the ids
the pattern finds, in sorted order, and their planes come in the order of `bands`. In each file
the first image HDU with data is the band's image (a SCI extension before its WHT); it must be
2-D. Where each fact comes from (survey.readers.fits_header), per band:
  pixel scale    WCS > PIXSCALE-like key > the `pixel_scale_arcsec` argument; the bands of one
                 object must agree (to 1e-4), and so must their sizes
  position       WCS at the stamp centre > RA/DEC keys, of the first band that has one; none:
                 the position is unknown (NaN) and `notes` says how many
  band name      the pattern (header BAND/FILTER keys are not consulted: the file says which band)
Everything that concerns one object (a missing band's file, a truncated or garbage file, a 3-D
image, bands of different size or pixel scale, no pixel scale) is raised by `read(i)` for that
object only, so ingest rejects and records it; opening raises only when no file matches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits

from survey.errors import UnreadableCutout

from ..catalog import Catalog
from ..cutout import Cutout
from .band_files import BandFilePattern, missing_bands_note, unmatched_note
from .common import check_pixels, check_positions
from .errors import CalibrationError, CorruptFile, LayoutMismatch, MissingBand
from .fits_header import celestial_wcs, centre_position, pixel_scale
from .fits_stamps import SUFFIXES, StampRef, _scan, _shape

SCALE_RTOL = 1e-4  # the bands of one object must agree on the pixel scale to this fraction


class FitsBandFiles:
    def __init__(
        self,
        root: Path | str,
        band_files: str,
        bands: tuple[str, ...],
        *,
        pixel_scale_arcsec: float | None = None,
    ) -> None:
        self.source = Path(root)
        if not self.source.is_dir():
            raise FileNotFoundError(f"{self.source}: band_files= needs a folder (no such folder)")
        self.bands = tuple(bands)
        self.pattern = BandFilePattern(band_files, self.bands)
        self._fallback_scale = pixel_scale_arcsec
        self.notes: list[str] = []
        groups, unmatched = self.pattern.find(self.source, SUFFIXES)
        if unmatched:
            self.notes.append(unmatched_note(unmatched, self.pattern))
        if not groups:
            raise LayoutMismatch(str(self.source), f"no file matches {self.pattern.pattern!r} for bands "
                                                   f"{','.join(self.bands)} in the folder or its sub-folders")
        note = missing_bands_note(groups, self.bands)
        if note:
            self.notes.append(note)
        self._ids = list(groups)
        self._files = list(groups.values())
        self._hdus: list[dict[str, int]] = []
        self._problems: dict[int, UnreadableCutout] = {}
        self.refs: list[StampRef | None] = []  # None: the object cannot be read (read(i) says why)
        for i, (oid, files) in enumerate(groups.items()):
            try:
                ref, hdus = self._ref(oid, files)
            except UnreadableCutout as e:
                if e.object_id is None:  # a file-level error: it concerns this object only
                    e = type(e)(e.source, e.reason, oid)
                self._problems[i] = e
                ref, hdus = None, {}
            self.refs.append(ref)
            self._hdus.append(hdus)
        ids = np.array(self._ids, dtype=object)
        nan = float("nan")
        ra = np.array([r.ra_deg if r else nan for r in self.refs])
        dec = np.array([r.dec_deg if r else nan for r in self.refs])
        cols = {
            "object_id": ids,
            "ra": check_positions(ids, ra, dec, str(self.source), optional=True),
            "dec": dec,
            **{f"file_{b}": np.array([f.get(b, "") for f in self._files], dtype=object) for b in self.bands},
            "native_pixel_scale_arcsec": np.array([r.pixel_scale_arcsec if r else nan for r in self.refs]),
        }
        self.catalog = Catalog(cols)
        unknown = sum(1 for r in self.refs if r is not None and np.isnan(r.ra_deg))
        if unknown:
            self.notes.append(f"{unknown} object(s) have no WCS or RA/DEC keys: positions unknown")

    def __len__(self) -> int:
        return len(self._ids)

    def source_of(self, i: int) -> str:
        return str(self.source / self.pattern.display(self._ids[i]))

    def read(self, i: int) -> Cutout:
        """Object i as a Cutout (C, H, W) float32, one plane per band."""
        if i in self._problems:
            raise self._problems[i]
        ref = self.refs[i]
        assert ref is not None
        planes = []
        for b in self.bands:
            path, hdu = self.source / self._files[i][b], self._hdus[i][b]
            try:
                with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                    data = np.asarray(hdul[hdu].data, dtype=np.float32)  # also big-endian -> native
            except (OSError, ValueError, TypeError, IndexError) as e:
                raise CorruptFile(f"{path}[{hdu}]", f"cannot read pixels: {e}", ref.object_id) from e
            if data.shape != ref.shape[1:]:
                raise LayoutMismatch(f"{path}[{hdu}]", f"data shape {data.shape} differs from header "
                                                       f"{ref.shape[1:]}", ref.object_id)
            planes.append(data)
        pixels = np.ascontiguousarray(np.stack(planes))
        check_pixels(pixels, self.source_of(i), ref.object_id, self.bands)
        return Cutout(pixels, ref.object_id, ref.ra_deg, ref.dec_deg, ref.pixel_scale_arcsec, self.bands)

    def __iter__(self) -> Iterator[Cutout]:
        for i in range(len(self)):
            yield self.read(i)

    def close(self) -> None:
        """Nothing stays open: each read opens and closes its files."""

    def _ref(self, oid: str, files: dict[str, str]) -> tuple[StampRef, dict[str, int]]:
        missing = [b for b in self.bands if b not in files]
        if missing:
            looked = ", ".join(self.pattern.path(oid, b) for b in missing)
            raise MissingBand(str(self.source / self.pattern.display(oid)),
                              f"no file for band(s) {','.join(missing)} (looked for {looked})", oid)
        hdus: dict[str, int] = {}
        shapes, scales, positions, bunits = [], [], [], []
        for b in self.bands:
            path = self.source / files[b]
            headers = _scan(path)
            if not headers:
                raise LayoutMismatch(str(path), "no image HDU with data", oid)
            hdu, header = headers[0]
            where = f"{path}[{hdu}]"
            shape = _shape(header, where)
            if shape[0] != 1:
                raise LayoutMismatch(where, f"a band file holds one 2-D image; found {shape[0]} planes", oid)
            wcs = celestial_wcs(header, where, oid)
            scale = pixel_scale(header, wcs, where, oid) or self._fallback_scale
            if scale is None:
                raise CalibrationError(where, "no pixel scale: no celestial WCS or PIXSCALE key; pass "
                                              "pixel_scale_arcsec=", oid)
            hdus[b] = hdu
            shapes.append(shape[1:])
            scales.append(float(scale))
            positions.append(centre_position(header, wcs, shape[1:], where, oid))
            bunits.append(str(header.get("BUNIT", "") or "").strip())
        where = str(self.source / self.pattern.display(oid))
        if len(set(shapes)) > 1:
            sizes = ", ".join(f"{b} {w}x{h}" for b, (h, w) in zip(self.bands, shapes, strict=True))
            raise LayoutMismatch(where, f"band files differ in size ({sizes})", oid)
        if max(scales) - min(scales) > SCALE_RTOL * max(scales):
            listed = ", ".join(f"{b} {s:.5g}" for b, s in zip(self.bands, scales, strict=True))
            raise CalibrationError(where, f"band files differ in pixel scale ({listed} arcsec/px)", oid)
        pos = next((p for p in positions if p is not None), (float("nan"), float("nan")))
        first = self.source / files[self.bands[0]]
        ref = StampRef(first, hdus[self.bands[0]], oid, pos[0], pos[1], scales[0], self.bands,
                       (len(self.bands), *shapes[0]), next((u for u in bunits if u), ""))
        return ref, hdus
