"""Ingest a published layout into native skysift shards (DESIGN.md §3), recording every object.

    from survey.ingest import ingest
    report = ingest(Path("south_0.h5"), "stein", Path("data/stein"), shard_size=4096)
    report = ingest(Path("stamps/"), "fits", Path("data/cosmos"), size_px=128,
                    catalog=Path("real_galaxy_catalog_23.5.fits"))

Kinds and their readers: "stein" SteinReader, "hayat" HayatReader, "fits" FitsStamps (catalog=
a GalSim real-galaxy catalog, optional), "images" ImageFolder (catalog= the CSV, default
<source>/catalog.csv when it exists; without one, every PNG/JPEG under the folder is an object
named by its relative path, position unknown; pixel_scale_arcsec required), "mosaic" Mosaic
(catalog= the source CSV, required; size_px required), "mmu" MmuReader (a Multimodal Universe image
dataset: a folder of <sample>/healpix=<N>/*.hdf5 files, a sample folder or one file; its catalogue
is inside; source_pixel_scale_arcsec only where the files carry no image_scale). Folders are
searched recursively.

Bands:
- `bands` names the input's planes in file order (an RGB picture's R, G, B; a FITS cube's planes).
- `band_files` ("images", "fits"): each object is one single-band file per band, found by a
  pattern such as "{id}_{band}.fits" or "{band}/{id}.png" (survey.readers.band_files); planes are
  stacked in the order of `bands` (required then). An object lacking a band is rejected.
- `out_bands` chooses which of those bands are written, and in which order (a subset or
  permutation of `bands`): an RGB JPEG read as i,r,g can be written as g,r,i. `units`, one per
  band, follow `bands` (the input). For display images the units record keeps which bands the
  source showed as red, green, blue (SurveyUnits.rgb), whatever order is written.

Rules:
- A whole-input problem (truncated or corrupt file, missing key, wrong band count of an HDF5
  layout, duplicate ids, missing calibration, stamps of mixed size without size_px) raises the
  reader's named error before any shard is written, where it can be known up front.
- A problem with one object (NaN-only stamp, an image file missing or corrupt, a source off the
  mosaic, a stamp with other bands) rejects that object: it is recorded in
  `IngestReport.rejected` as (source, object_id, reason) and ingest goes on. A corrupt file in a
  FITS folder raises (when listed): it may hold any number of objects, which cannot be counted;
  with band_files a file is one band of one object, so a corrupt one rejects that object, as does
  a missing band.
- Nothing is dropped silently: n_read == n_written + len(rejected). The report is also written to
  <out_dir>/ingest_report.json; its `notes` say in words what was assumed (no catalogue, ids from
  file names, positions unknown, files that fit no band pattern, units, bands reordered).
- A position may be unknown (ra and dec both NaN): an image folder without a catalogue, a CSV
  without ra/dec, band files without WCS. Such objects are indexed and searchable by id and by
  similarity, and left out of everything positional (survey.catalog).
- `size_px` centre-crops/pads every stamp (NaN padding, see survey.readers.resize).
  `pixel_scale_arcsec` resamples every stamp to that scale, conserving flux ("stein", "hayat",
  "fits", "mosaic"). For "images", which carry no scale, `source_pixel_scale_arcsec` is the images'
  own scale (without it, `pixel_scale_arcsec` is, and nothing is resampled). `fit_px` shrinks
  (or grows) each stamp so that its whole field fits fit_px x fit_px pixels: a 424 px stamp is
  not cut to its centre. Every stamp reaches the grid through survey.readers.resize.conform, as
  an uploaded cutout does.
- Units are data (survey.units): `units` names them (one for all bands or one per band); the
  default is "display" for images, "nanomaggies" for the Stein and Hayat layouts, and for FITS the
  BUNIT of the stamps or "flux". Each shard records the units and the measured background noise,
  background level and spread per band.
- `overwrite=True` replaces the shards already in out_dir (only after the input opened cleanly).
Memory: one shard of pixels, shard_size x C x H x W x 4 bytes (4096 Stein stamps: 1.1 GB).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .catalog import Catalog
from .cutout import Cutout
from .errors import CatalogError, SurveyError, UnreadableCutout
from .native import SHARD_GLOB, shard_name, write_shard
from .readers.common import Rejection, check_pixels
from .readers.errors import BandMismatch, LayoutMismatch
from .readers.resize import conform
from .units import DISPLAY_UNITS, SurveyUnits, measure, parse_units

Kind = Literal["stein", "hayat", "fits", "images", "mosaic", "mmu"]
Bands = tuple[str, ...] | None


@dataclass
class IngestReport:
    source: str
    kind: str
    out_dir: Path
    n_read: int = 0
    n_written: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    shards: list[Path] = field(default_factory=list)
    bands: tuple[str, ...] = ()
    pixel_scale_arcsec: float = float("nan")
    image_shape: tuple[int, ...] = ()
    units: tuple[str, ...] = ()
    source_pixel_scale_arcsec: float = float("nan")
    notes: list[str] = field(default_factory=list)  # what ingest assumed or changed, in words
    input_bands: tuple[str, ...] = ()  # the input's planes, in file order (bands: those written)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            out_dir=str(self.out_dir),
            shards=[p.name for p in self.shards],
            rejected=[r._asdict() for r in self.rejected],
        )
        return d


@dataclass
class _Plan:
    """What one reader contributes: constants, the catalog, and a stream of objects."""

    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    survey_name: str
    catalog: Catalog
    # (catalog row, pixels (C, H, W) float32) or (catalog row, why it was rejected)
    objects: Iterator[tuple[int, np.ndarray | Rejection]]
    close: Any = None
    units: str = "nanomaggies"  # default unit name when the caller names none
    rgb: tuple[str, ...] | None = None  # display images: the bands shown as red, green, blue
    source_scale: float | None = None  # the input's own pixel scale, when one for all
    # [conserve flux when resampling]: False for display values; read by the object stream, which
    # runs after the caller's units are known
    flux: list[bool] = field(default_factory=lambda: [True])
    notes: list[str] = field(default_factory=list)


def ingest(
    source: Path,
    kind: Kind,
    out_dir: Path,
    *,
    shard_size: int = 4096,
    size_px: int | None = None,
    pixel_scale_arcsec: float | None = None,
    bands: tuple[str, ...] | None = None,
    catalog: Path | None = None,
    survey_name: str | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    units: str | None = None,
    source_pixel_scale_arcsec: float | None = None,
    fit_px: int | None = None,
    band_files: str | None = None,
    out_bands: tuple[str, ...] | None = None,
) -> IngestReport:
    """Read `source` with the reader for `kind` and write native shards into `out_dir`."""
    if shard_size <= 0 or batch_size <= 0:
        raise ValueError("shard_size and batch_size must be positive")
    if fit_px is not None and (fit_px <= 0 or size_px is not None or pixel_scale_arcsec is not None and
                               kind != "images"):
        raise ValueError("fit_px must be positive and replaces size_px and the output pixel_scale_arcsec")
    source, out_dir = Path(source), Path(out_dir)
    existing = sorted(out_dir.glob(SHARD_GLOB)) + sorted(out_dir.glob(SHARD_GLOB + ".partial"))
    if existing and not overwrite:
        raise SurveyError(
            f"{out_dir}: already holds {len(existing)} shard(s); pass overwrite=True "
            "to replace them"
        )
    if kind == "images" and source_pixel_scale_arcsec is None:
        source_pixel_scale_arcsec, pixel_scale_arcsec = pixel_scale_arcsec, None
    if band_files is not None and kind not in ("images", "fits"):
        raise ValueError(f"band_files= is for image and FITS folders, not kind {kind!r}")
    if band_files is not None and not bands:
        raise ValueError("band_files= needs bands=: the band names, in the order the planes are stacked")
    plan = _plan(source, kind, size_px, pixel_scale_arcsec, bands, catalog, batch_size,
                 source_pixel_scale_arcsec, fit_px, band_files)
    try:
        select, written = _select_bands(plan.bands, out_bands)
        input_units = parse_units(units, len(plan.bands), plan.units)
    except BaseException:
        if plan.close is not None:
            plan.close()
        raise
    unit_names = tuple(input_units[j] for j in select) if select is not None else input_units
    plan.flux[0] = unit_names[0].lower() not in DISPLAY_UNITS  # display values are resampled, not flux-conserved
    for p in existing:  # only now: a plan that fails leaves the old shards in place
        p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = IngestReport(
        str(source), kind, out_dir, bands=written, pixel_scale_arcsec=plan.pixel_scale_arcsec,
        units=unit_names, notes=list(plan.notes), input_bands=plan.bands,
        source_pixel_scale_arcsec=plan.source_scale if plan.source_scale is not None else float("nan"),
    )
    if units is None:
        report.notes.append(f"units not given (--units): taken as {plan.units}")
    if written != plan.bands:
        report.notes.append(f"input bands {','.join(plan.bands)} written as {','.join(written)} (--out-bands)")
        if plan.rgb is not None:
            report.notes.append(f"the source images showed {','.join(plan.rgb)} as red, green, blue: recorded "
                                "in the units (rgb) for rendering and uploads")
    if plan.rgb is not None and any(u.lower() not in DISPLAY_UNITS for u in unit_names):
        report.notes.append("PNG/JPEG values carry a display stretch but were declared as flux "
                            f"({','.join(unit_names)}): normalisation will treat them as linear")
    survey_units: list[SurveyUnits] = []
    rows: list[int] = []
    stamps: list[np.ndarray] = []

    def flush() -> None:
        path = out_dir / shard_name(len(report.shards))
        images = np.stack(stamps)
        shard_units = measure(images, written, unit_names, rgb=plan.rgb)
        survey_units.append(shard_units)
        write_shard(
            path,
            images,
            plan.catalog.take(rows),
            written,
            plan.pixel_scale_arcsec,
            survey_name or plan.survey_name,
            units=shard_units,
            source_pixel_scale_arcsec=plan.source_scale,
        )
        report.shards.append(path)
        report.n_written += len(rows)
        rows.clear()
        stamps.clear()

    try:
        for row, item in plan.objects:
            report.n_read += 1
            if isinstance(item, Rejection):
                report.rejected.append(item)
                continue
            if select is not None:
                item = np.ascontiguousarray(item[select])
            if not report.image_shape:
                report.image_shape = item.shape
            elif item.shape != report.image_shape:  # the plan's checks should make this impossible
                raise LayoutMismatch(
                    str(source),
                    f"stamp shape {item.shape} differs from {report.image_shape}; pass size_px=",
                    str(plan.catalog["object_id"][row]),
                )
            rows.append(row)
            stamps.append(item)
            if len(rows) == shard_size:
                flush()
        if rows:
            flush()
    finally:
        if plan.close is not None:
            plan.close()
    assert report.n_read == report.n_written + len(report.rejected)
    (out_dir / "ingest_report.json").write_text(json.dumps(report.to_json(), indent=1))
    return report


def _plan(source: Path, kind: str, size_px: int | None, scale: float | None, bands: Bands, catalog: Path | None,
          batch_size: int, source_scale: float | None = None, fit_px: int | None = None,
          band_files: str | None = None) -> _Plan:
    if fit_px is not None and kind not in ("images", "fits"):
        raise ValueError(f"fit_px is for image and FITS stamp folders; for kind {kind!r} pass "
                         "pixel_scale_arcsec= and size_px=")
    if kind == "images":
        return _plan_images(source, size_px, scale, bands, catalog, source_scale, fit_px, band_files)
    if kind == "mmu":
        return _plan_mmu(source, size_px, scale, bands, catalog, batch_size, source_scale)
    if source_scale is not None:
        raise ValueError(f"source_pixel_scale_arcsec is for kind 'images' (kind {kind!r} reads its own scale)")
    if kind == "fits":
        return _plan_fits(source, size_px, scale, bands, catalog, fit_px, band_files)
    if kind in ("stein", "hayat"):
        return _plan_hdf5(source, kind, size_px, scale, bands, catalog, batch_size)
    if kind == "mosaic":
        return _plan_mosaic(source, size_px, scale, bands, catalog)
    raise ValueError(f"unknown kind {kind!r}; expected stein, hayat, fits, images, mosaic or mmu")


def _plan_hdf5(source: Path, kind: str, size_px: int | None, scale: float | None, bands: Bands,
               catalog: Path | None, batch_size: int) -> _Plan:
    from .readers.hayat import HayatReader
    from .readers.stein import SteinReader

    if catalog is not None:
        raise ValueError(f"kind={kind!r} carries its catalog inside the HDF5 file; drop catalog=")
    reader = SteinReader(source) if kind == "stein" else HayatReader(source)
    if bands is not None and tuple(bands) != reader.bands:
        reader.close()
        raise BandMismatch(str(source), f"layout has bands {reader.bands}, expected {tuple(bands)}")
    batch: list[Any] = [-1, None]  # (first row, images) of the batch in memory

    def read(i: int) -> Cutout:
        start = i - i % batch_size
        if batch[0] != start:
            batch[:] = [
                start,
                reader.images(np.arange(start, min(start + batch_size, len(reader)))),
            ]
        return reader.cutout(i, pixels=batch[1][i - start])

    out_scale = scale if scale is not None else reader.pixel_scale_arcsec
    flux = [True]
    objects = _stream(len(reader), read, lambda i: reader.source, out_scale, size_px, reader.bands, flux)
    return _Plan(reader.bands, out_scale, reader.survey_name, reader.catalog, objects, reader.close, flux=flux)


def _plan_mmu(
    source: Path,
    size_px: int | None,
    scale: float | None,
    bands: Bands,
    catalog: Path | None,
    batch_size: int,
    source_scale: float | None,
) -> _Plan:
    from .readers.mmu import MmuReader

    if catalog is not None:
        raise ValueError("kind='mmu' carries its catalog inside the HDF5 files; drop catalog=")
    reader = MmuReader(source, pixel_scale_arcsec=source_scale)
    problem = None
    if bands is not None and tuple(bands) != reader.bands:
        reader.close()
        raise BandMismatch(str(source), f"dataset has bands {reader.bands} (image_band "
                                        f"{','.join(reader.raw_bands)}), expected {tuple(bands)}")
    if scale is None and reader.pixel_scale_arcsec is None:
        problem = "objects have different image_scale values; pass pixel_scale_arcsec="
    elif size_px is None and (reader.image_shape is None or reader.pixel_scale_arcsec is None):
        problem = "stamps differ in size between files or in pixel scale; pass size_px="
    if problem:
        reader.close()
        raise LayoutMismatch(str(source), problem)
    batch: list[Any] = [-1, None]  # (first row, images) of the batch in memory

    def read(i: int) -> Cutout:
        if reader.image_shape is None:  # stamps of several sizes: one at a time
            return reader.cutout(i)
        start = i - i % batch_size
        if batch[0] != start:
            batch[:] = [start, reader.images(np.arange(start, min(start + batch_size, len(reader))))]
        return reader.cutout(i, pixels=batch[1][i - start])

    out_scale = scale if scale is not None else reader.pixel_scale_arcsec
    assert out_scale is not None
    flux = [True]
    objects = _stream(len(reader), read, reader.source_of, out_scale, size_px, reader.bands, flux)
    return _Plan(reader.bands, out_scale, reader.survey_name, reader.catalog, objects, reader.close,
                 units=reader.units, source_scale=reader.pixel_scale_arcsec, notes=list(reader.notes), flux=flux)


def _plan_fits(
    source: Path, size_px: int | None, scale: float | None, bands: Bands, catalog: Path | None,
    fit_px: int | None = None, band_files: str | None = None,
) -> _Plan:
    from .readers.fits_bands import FitsBandFiles
    from .readers.fits_stamps import FitsStamps

    stamps: FitsStamps | FitsBandFiles
    if band_files is not None:
        if catalog is not None:
            raise ValueError("band_files= takes the ids from the file names and the positions from the WCS; "
                             "drop catalog=")
        assert bands is not None
        stamps = FitsBandFiles(source, band_files, tuple(bands))
    else:
        stamps = FitsStamps(source, bands=bands, galsim_catalog=catalog)
    refs = [r for r in stamps.refs if r is not None]  # FitsBandFiles: None for an object read() rejects
    if not refs:  # every object of a band-file folder has a problem: say the first one
        try:
            stamps.read(0)
        except UnreadableCutout as e:
            raise LayoutMismatch(str(source), f"no object can be read, e.g. {e}") from e
    native = {r.pixel_scale_arcsec for r in refs}
    shapes = {r.shape[1:] for r in refs}
    found = {r.bands for r in refs}
    notes = list(getattr(stamps, "notes", []))
    if fit_px is not None:
        if len(shapes) > 1 or not _all_close(native):
            stamps.close()
            raise LayoutMismatch(str(source), "fit_px needs stamps of one size and pixel scale; pass "
                                              "pixel_scale_arcsec= and size_px= instead")
        side = max(refs[0].shape[1:])
        scale, size_px = refs[0].pixel_scale_arcsec * side / fit_px, fit_px
        notes.append(f"fit_px {fit_px}: {side} px stamps resampled to {scale:.4g} arcsec/px")
    problem = None
    if scale is None and not _all_close(native):
        problem = f"stamps have pixel scales {sorted(native)} arcsec; pass pixel_scale_arcsec="
    elif size_px is None and (len(shapes) > 1 or not _all_close(native)):
        problem = f"stamps differ in size ({len(shapes)} shapes, e.g. {sorted(shapes)[:3]}) or "
        problem += "pixel scale; pass size_px="
    elif bands is None and len(found) > 1:
        problem = f"stamps have different bands {sorted(found)}; pass bands="
    if problem:
        stamps.close()
        raise LayoutMismatch(str(source), problem)
    out_scale = scale if scale is not None else refs[0].pixel_scale_arcsec
    out_bands = tuple(bands) if bands is not None else refs[0].bands
    assert out_bands is not None  # FitsStamps raised CalibrationError for unnamed bands
    flux = [True]
    objects = _stream(len(stamps), stamps.read, stamps.source_of, out_scale, size_px, out_bands, flux)
    name = f"fits:{source.name}"
    units = {str(getattr(r, "bunit", "") or "") for r in refs} - {""}
    return _Plan(out_bands, out_scale, name, stamps.catalog, objects, stamps.close,
                 units=units.pop() if len(units) == 1 else "flux",
                 source_scale=refs[0].pixel_scale_arcsec if _all_close(native) else None,
                 notes=notes, flux=flux)


def _plan_images(
    source: Path, size_px: int | None, scale: float | None, bands: Bands, catalog: Path | None,
    source_scale: float | None = None, fit_px: int | None = None, band_files: str | None = None,
) -> _Plan:
    from .readers.image_folder import DEFAULT_BANDS, ImageFolder

    if source_scale is None:
        raise ValueError("kind='images' needs the images' pixel_scale_arcsec: PNG/JPEG carry no WCS")
    folder = ImageFolder(source, catalog, pixel_scale_arcsec=source_scale, bands=bands or DEFAULT_BANDS,
                         band_files=band_files)
    shapes = {folder.image_size(i) for i in range(len(folder))} - {(0, 0)}
    notes = list(folder.notes)
    if not bands:
        notes.append(f"bands not given (--bands): the channels are named {','.join(DEFAULT_BANDS)}")
    if fit_px is not None and shapes:
        if len(shapes) > 1:
            raise LayoutMismatch(str(source), f"fit_px needs images of one size, found {sorted(shapes)[:3]}; "
                                              "pass size_px= instead")
        side = max(shapes.pop())
        scale, size_px = source_scale * side / fit_px, fit_px
        notes.append(f"fit_px {fit_px}: {side} px images resampled to {scale:.4g} arcsec/px")
    elif size_px is None and len(shapes) > 1:
        raise LayoutMismatch(
            str(source), f"images differ in size {sorted(shapes)[:3]}; pass size_px="
        )
    out_scale = scale if scale is not None else source_scale
    flux = [True]
    objects = _stream(len(folder), folder.read, folder.source_of, out_scale, size_px, folder.bands, flux)
    return _Plan(folder.bands, out_scale, f"images:{source.name}", folder.catalog, objects, units="display",
                 rgb=folder.rgb, source_scale=source_scale, notes=notes, flux=flux)


def _plan_mosaic(
    source: Path, size_px: int | None, scale: float | None, bands: Bands, catalog: Path | None
) -> _Plan:
    from .readers.mosaic import Mosaic

    if size_px is None or catalog is None:
        raise ValueError("kind='mosaic' needs size_px and catalog= (the source list CSV)")
    mosaic = Mosaic(source, catalog, size_px=size_px, bands=bands)
    out_scale = scale if scale is not None else mosaic.pixel_scale_arcsec
    flux = [True]
    objects = _stream(
        len(mosaic), mosaic.cutout, lambda i: mosaic.source, out_scale, size_px, mosaic.bands, flux
    )
    name = f"mosaic:{source.name}"
    return _Plan(mosaic.bands, out_scale, name, mosaic.catalog, objects, mosaic.close, flux=flux)


def _stream(
    n: int,
    read: Callable[[int], Cutout],
    source_of: Callable[[int], str],
    out_scale: float,
    size_px: int | None,
    bands: tuple[str, ...],
    flux: list[bool],
) -> Iterator[tuple[int, np.ndarray | Rejection]]:
    """Read objects 0..n-1, conform each to the output grid, turn per-object errors into rows.
    `flux[0]`: the values are flux (resampling conserves it) rather than display values."""
    for i in range(n):
        try:
            c = read(i)
            if c.bands != bands:
                raise BandMismatch(source_of(i), f"bands {c.bands}, expected {bands}", c.object_id)
            pixels = conform(c.pixels, c.pixel_scale_arcsec, out_scale, size_px, conserve_flux=flux[0])
            # Checked again: cropping a stamp can leave a band with nothing but NaN padding.
            yield i, check_pixels(pixels, source_of(i), c.object_id, bands)
        except (UnreadableCutout, CatalogError) as e:
            yield i, _rejection(e)


def _rejection(e: Exception) -> Rejection:
    """A per-object error as a report row; errors that name no object are whole-input: re-raise."""
    object_id = getattr(e, "object_id", None)
    if object_id is None:
        raise e
    reason = getattr(e, "reason", str(e))
    return Rejection(getattr(e, "source", "?"), str(object_id), f"{type(e).__name__}: {reason}")


def _select_bands(bands: tuple[str, ...], out_bands: Bands) -> tuple[list[int] | None, tuple[str, ...]]:
    """(plane indices to write or None for all, the bands written) for `out_bands`."""
    if out_bands is None:
        return None, bands
    out = tuple(b.strip() for b in out_bands)
    if not out or len(set(out)) != len(out) or any(b not in bands for b in out):
        raise ValueError(f"out_bands={','.join(out)} must name bands of the input ({','.join(bands)}), each at "
                         "most once; bands= names the input's planes in file order")
    return [bands.index(b) for b in out], out


def _all_close(values: set[float]) -> bool:
    return len(values) <= 1 or bool(np.ptp(sorted(values)) <= 1e-6 * max(values))
