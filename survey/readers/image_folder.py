"""A folder of PNG/JPEG images, with or without a CSV catalogue.

With a catalogue (`catalog_csv`, default `<folder>/catalog.csv` when it exists): columns
`object_id, ra, dec, file` (+ extra columns; accepted spellings in survey.readers.csv_catalog:
objid/id, path/filename, ra_deg/dec_deg). `file` is relative to the image folder (or absolute).
ra/dec may be absent (every position unknown) or empty on a row (that row's position unknown).

Without one: every PNG/JPEG under the folder and its sub-folders (extensions .png, .jpg, .jpeg in
any case; hidden files skipped) is an object, in sorted order of its relative path, and its id is
that path without the extension (`587722952767439450`, `sub/obj1`). Two files that give one id
(`a.png` and `a.jpg`) raise DuplicateObjectId. Positions are unknown: ra and dec are NaN, and
`notes` says so.

One file per band (`band_files`, a pattern such as `{id}_{band}.png` or `{band}/{id}.png`, see
survey.readers.band_files): each object is assembled from one greyscale image per band, in the
order of `bands`; an RGB file whose three channels are equal counts as greyscale. Without a
catalogue the objects are the ids the pattern finds; with one, its object_id column names them
(the `file` column is then not needed). An object lacking a band's file raises MissingBand when
read (ingest rejects and records it).

An RGB image gives 3 bands in channel order R, G, B; a greyscale image gives 1. `bands` names them
and defaults to ("r", "g", "b"): the *display channels* red, green, blue, not SDSS r and g. Pass
the survey bands behind the colours when they are known, e.g. bands=("z", "r", "g") for a Legacy
Survey viewer JPEG (red <- z, green <- r, blue <- g), so that the model card's band check means
something.

Pixel values are NOT linear flux: PNG/JPEG carry a display stretch (asinh, sRGB gamma, clipping)
that cannot be undone without knowing it. Values are scaled to [0, 1] (8-bit / 255, 16-bit /
65535) and `flux_unit` says "display" (survey.units). An alpha channel is dropped after marking
fully transparent pixels NaN (no data). Rows are flipped so that row 0 is the bottom of the
picture, as in FITS and every other skysift array (a picture is drawn top-down). The pixel scale
comes from the `pixel_scale_arcsec` argument: these formats have no WCS. `image_planes` is the one
decoder of such pictures: ingest and the service's uploads both use it.

Per object, `read(i)` raises UnreadableCutout (file missing), CorruptFile (truncated or not an
image), WrongBandCount (channels differ from `bands`), MissingBand, LayoutMismatch (band files of
different sizes) or EmptyStamp; opening raises for a bad CSV, duplicate ids or an empty folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from survey.errors import UnreadableCutout

from ..catalog import Catalog
from ..cutout import Cutout
from .band_files import BandFilePattern, missing_bands_note, unmatched_note
from .common import check_pixels, check_unique_ids, list_files
from .csv_catalog import read_csv_catalog
from .errors import CorruptFile, LayoutMismatch, MissingBand, WrongBandCount

DEFAULT_BANDS = ("r", "g", "b")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NO_CATALOGUE_NOTE = "no catalogue: ids from file names, positions unknown"
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


class ImageFolder:
    flux_unit = "display"

    def __init__(
        self,
        root: Path | str,
        catalog_csv: Path | str | None = None,
        *,
        pixel_scale_arcsec: float,
        bands: tuple[str, ...] = DEFAULT_BANDS,
        band_files: str | None = None,
    ) -> None:
        if not pixel_scale_arcsec or pixel_scale_arcsec <= 0:
            raise ValueError(f"pixel_scale_arcsec must be positive, got {pixel_scale_arcsec}")
        self.root = Path(root)
        self.bands = tuple(bands)
        self.pixel_scale_arcsec = float(pixel_scale_arcsec)
        self.notes: list[str] = []  # what was assumed, in words (ingest copies them into its report)
        self.pattern = BandFilePattern(band_files, self.bands) if band_files else None
        self._files: list[dict[str, str]] | None = None  # band_files: per object, band -> relative path
        csv_path = Path(catalog_csv) if catalog_csv is not None else self.root / "catalog.csv"
        if catalog_csv is not None or csv_path.is_file():
            self.csv_path: Path | None = csv_path
            required = ("object_id",) if self.pattern else ("object_id", "file")
            self.catalog = read_csv_catalog(csv_path, required, text_columns=("file",), positions_optional=True,
                                            notes=self.notes)
            if self.pattern is not None:
                pattern = self.pattern
                self._files = [
                    {b: pattern.path(oid, b) for b in self.bands if (self.root / pattern.path(oid, b)).is_file()}
                    for oid in self.catalog["object_id"].astype(str)
                ]
        else:
            self.csv_path = None
            self.catalog = self._list_objects()
            self.notes.append(NO_CATALOGUE_NOTE)
        if self._files is not None:
            for b in self.bands:
                self.catalog.columns[f"file_{b}"] = np.array([f.get(b, "") for f in self._files], dtype=object)
            note = missing_bands_note(dict(zip(self.catalog["object_id"], self._files, strict=True)), self.bands)
            if note:
                self.notes.append(note)

    def _list_objects(self) -> Catalog:
        """The catalogue of a folder without one: ids from the files' relative paths."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder (and no catalogue CSV given)")
        if self.pattern is not None:
            groups, unmatched = self.pattern.find(self.root, IMAGE_SUFFIXES)
            if unmatched:
                self.notes.append(unmatched_note(unmatched, self.pattern))
            ids, self._files, extra = list(groups), list(groups.values()), {}
        else:
            rels = list_files(self.root, IMAGE_SUFFIXES)
            ids = [r[: -len(Path(r).suffix)] for r in rels]
            extra = {"file": np.array(rels, dtype=object)}
        if not ids:
            what = f"matching {self.pattern.pattern!r}" if self.pattern else "(.png, .jpg, .jpeg)"
            raise LayoutMismatch(str(self.root), f"no catalog.csv and no images {what} in the folder or its "
                                                 "sub-folders")
        id_array = np.array(ids, dtype=object)
        check_unique_ids(id_array, f"{self.root} (ids from file names without their extension)")
        nan = np.full(len(ids), np.nan)
        return Catalog({"object_id": id_array, "ra": nan, "dec": nan.copy(), **extra})

    @property
    def rgb(self) -> tuple[str, ...] | None:
        """The bands shown as red, green, blue by the source images (one RGB file per object)."""
        return self.bands if self.pattern is None and len(self.bands) == 3 else None

    def __len__(self) -> int:
        return len(self.catalog)

    def path(self, i: int) -> Path:
        """The object's image file (one file per band: the first band's file found)."""
        if self._files is None:
            return self.root / str(self.catalog["file"][i])
        files = self._files[i]
        first = next((files[b] for b in self.bands if b in files), None)
        oid = str(self.catalog["object_id"][i])
        assert self.pattern is not None
        return self.root / (first or self.pattern.path(oid, self.bands[0]))

    def source_of(self, i: int) -> str:
        """Where object i comes from, for messages: its file, or its files' pattern."""
        if self.pattern is None:
            return str(self.path(i))
        return str(self.root / self.pattern.display(str(self.catalog["object_id"][i])))

    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) from the image header only; (0, 0) if unreadable (read() then says why)."""
        try:
            with Image.open(self.path(i)) as img:
                return img.height, img.width
        except (OSError, UnidentifiedImageError):
            return (0, 0)

    def read(self, i: int) -> Cutout:
        """Object i as a Cutout (C, H, W) float32 in [0, 1], NaN where alpha is 0."""
        oid = str(self.catalog["object_id"][i])
        if self._files is None:
            path = self.path(i)
            pixels = _decode(path, oid)
            if pixels.shape[0] != len(self.bands):
                raise WrongBandCount(
                    str(path),
                    f"{pixels.shape[0]} channel(s), expected {len(self.bands)} bands {self.bands}",
                    oid,
                )
            where = str(path)
        else:
            pixels, where = self._assemble(i, oid), self.source_of(i)
        check_pixels(pixels, where, oid, self.bands)
        return Cutout(pixels, oid, float(self.catalog["ra"][i]), float(self.catalog["dec"][i]), self.pixel_scale_arcsec,
                      self.bands)

    def _assemble(self, i: int, oid: str) -> np.ndarray:
        """One greyscale plane per band, stacked in the order of `bands`."""
        assert self._files is not None and self.pattern is not None
        files = self._files[i]
        missing = [b for b in self.bands if b not in files]
        if missing:
            looked = ", ".join(self.pattern.path(oid, b) for b in missing)
            raise MissingBand(self.source_of(i), f"no file for band(s) {','.join(missing)} (looked for {looked})", oid)
        planes = []
        for b in self.bands:
            path = self.root / files[b]
            p = _decode(path, oid)
            if p.shape[0] > 1 and all(np.array_equal(p[0], q, equal_nan=True) for q in p[1:]):
                p = p[:1]  # a grey picture saved as RGB
            if p.shape[0] != 1:
                raise WrongBandCount(str(path), f"{p.shape[0]} different channels; a band file must be greyscale "
                                                f"(band {b})", oid)
            planes.append(p[0])
        shapes = {q.shape for q in planes}
        if len(shapes) > 1:
            sizes = ", ".join(f"{b} {q.shape[1]}x{q.shape[0]}" for b, q in zip(self.bands, planes, strict=True))
            raise LayoutMismatch(self.source_of(i), f"band files differ in size ({sizes})", oid)
        return np.ascontiguousarray(np.stack(planes), dtype=np.float32)

    def __iter__(self) -> Iterator[Cutout]:
        for i in range(len(self)):
            yield self.read(i)


def _decode(path: Path, oid: str) -> np.ndarray:
    if not path.is_file():
        raise UnreadableCutout(str(path), "image file not found", oid)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncation shows here, not later
            return image_planes(img)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise CorruptFile(
            str(path), f"not a readable PNG/JPEG (truncated or corrupt?): {e}", oid
        ) from e


def image_planes(img: Image.Image) -> np.ndarray:
    """(C, H, W) float32 in [0, 1] from a decoded PIL image of any common mode, row 0 at the bottom."""
    if img.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    arr = np.asarray(img)
    if img.mode in _SIXTEEN_BIT:
        arr = arr.astype(np.float32) / 65535.0
    elif img.mode == "F":
        arr = arr.astype(np.float32)
    else:
        arr = arr.astype(np.float32) / 255.0
    arr = arr[::-1]  # drawn top-down; row 0 of a survey array is the bottom (south, north up)
    if arr.ndim == 2:
        return np.ascontiguousarray(arr[None])
    planes = np.moveaxis(arr, -1, 0)  # (H, W, C) -> (C, H, W)
    if img.mode in ("RGBA", "LA"):
        alpha = planes[-1]
        planes = np.where(alpha[None] > 0, planes[:-1], np.nan).astype(np.float32)
    return np.ascontiguousarray(planes)
