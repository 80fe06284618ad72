"""A folder of PNG/JPEG images plus a CSV catalog: `object_id, ra, dec, file` (+ extra columns).

`file` is relative to the image folder (or absolute). An RGB image gives 3 bands in channel order
R, G, B; a greyscale image gives 1. `bands` names them and defaults to ("r", "g", "b"): the
*display channels* red, green, blue, not SDSS r and g. Pass the survey bands behind the colours
when they are known, e.g. bands=("z", "r", "g") for a Legacy Survey viewer JPEG (red <- z,
green <- r, blue <- g), so that the model card's band check means something.

Pixel values are NOT linear flux: PNG/JPEG carry a display stretch (asinh, sRGB gamma, clipping)
that cannot be undone without knowing it. Values are scaled to [0, 1] (8-bit / 255, 16-bit /
65535) and `flux_unit` says "display" (survey.units). An alpha channel is dropped after marking
fully transparent pixels NaN (no data). Rows are flipped so that row 0 is the bottom of the
picture, as in FITS and every other skysift array (a picture is drawn top-down). The pixel scale
comes from the `pixel_scale_arcsec` argument: these formats have no WCS. `image_planes` is the one
decoder of such pictures: ingest and the service's uploads both use it.

Per object, `read(i)` raises UnreadableCutout (file missing), CorruptFile (truncated or not an
image), WrongBandCount (channels differ from `bands`) or EmptyStamp; opening raises for a bad CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from survey.errors import UnreadableCutout

from ..cutout import Cutout
from .common import check_pixels
from .csv_catalog import read_csv_catalog
from .errors import CorruptFile, WrongBandCount

DEFAULT_BANDS = ("r", "g", "b")
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
    ) -> None:
        if not pixel_scale_arcsec or pixel_scale_arcsec <= 0:
            raise ValueError(f"pixel_scale_arcsec must be positive, got {pixel_scale_arcsec}")
        self.root = Path(root)
        self.csv_path = Path(catalog_csv) if catalog_csv is not None else self.root / "catalog.csv"
        self.catalog = read_csv_catalog(
            self.csv_path, ("object_id", "ra", "dec", "file"), text_columns=("file",)
        )
        self.bands = tuple(bands)
        self.pixel_scale_arcsec = float(pixel_scale_arcsec)

    def __len__(self) -> int:
        return len(self.catalog)

    def path(self, i: int) -> Path:
        return self.root / str(self.catalog["file"][i])

    def image_size(self, i: int) -> tuple[int, int]:
        """(H, W) from the image header only; (0, 0) if unreadable (read() then says why)."""
        try:
            with Image.open(self.path(i)) as img:
                return img.height, img.width
        except (OSError, UnidentifiedImageError):
            return (0, 0)

    def read(self, i: int) -> Cutout:
        """Object i as a Cutout (C, H, W) float32 in [0, 1], NaN where alpha is 0."""
        path, oid = self.path(i), str(self.catalog["object_id"][i])
        if not path.is_file():
            raise UnreadableCutout(str(path), "image file not found", oid)
        try:
            with Image.open(path) as img:
                img.load()  # decode now: truncation shows here, not later
                pixels = image_planes(img)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise CorruptFile(
                str(path), f"not a readable PNG/JPEG (truncated or corrupt?): {e}", oid
            ) from e
        if pixels.shape[0] != len(self.bands):
            raise WrongBandCount(
                str(path),
                f"{pixels.shape[0]} channel(s), expected {len(self.bands)} bands {self.bands}",
                oid,
            )
        check_pixels(pixels, str(path), oid, self.bands)
        return Cutout(
            pixels,
            oid,
            float(self.catalog["ra"][i]),
            float(self.catalog["dec"][i]),
            self.pixel_scale_arcsec,
            self.bands,
        )

    def __iter__(self) -> Iterator[Cutout]:
        for i in range(len(self)):
            yield self.read(i)


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
