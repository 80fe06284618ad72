"""Uploaded bytes -> pixels on the model's grid: the one decoder of a user's cutout.

The one path from an uploaded file (FITS/PNG/JPEG/NPY bytes) to pixels on the model's grid, shared
by the service (app/uploads.py keeps only the HTTP side: body limits, the encoder cache) and by
anything else that embeds a user's file. It reads with the ingest readers (survey.readers:
fits_header, image_folder.image_planes, resize.conform), so ingest and upload cannot drift apart.
It lives in encoder/, not survey/readers/, because it checks the file against the model it will be
embedded by (ModelCard: bands, pixel scale, input size) and raises IncompatibleInput, and survey/
imports nothing of ours (survey -> encoder -> indexer -> app).

Formats are detected from the bytes (magic numbers), never trusted from the file name; a known
extension that contradicts the bytes is refused (it usually means the wrong file was picked).

  FITS  2-D image (one band) or (C, H, W) cube, the first image HDU with data. Pixel scale from
        the celestial WCS (astropy proj_plane_pixel_scales) or a PIXSCALE-like key, else the
        `pixel_scale_arcsec` field, else refused: FITS is expected to say. Band names from
        BANDS / BAND1..n / BAND / FILTER or the `bands` field; none given -> the model's, in order
        (noted). Pixels are linear flux in the survey's units.
  NPY   (C, H, W) or (H, W) (or (1, C, H, W)) numeric array, loaded without pickle. Pixel scale
        from the field, else the model's is assumed (noted); bands as for FITS.
  PNG/  8- or 16-bit RGB(A) or greyscale. Assumed to be a Lupton et al. (2004) arcsinh colour
  JPEG  composite like the service's own `GET /cutouts/{id}.png` (stretch 0.5, Q 8, north up,
        R,G,B = reddest, middle, bluest of the model's bands weighted by survey.render.BAND_WEIGHTS,
        i.e. z,r,g for a g,r,z model). That stretch is inverted exactly (up to 8-bit rounding,
        clipped cores and negative sky, which a composite cannot hold), giving approximate linear
        flux. `bands` names what R,G,B show (e.g. "z,r,g"). An image made with another stretch
        still searches, less well. Alpha 0 -> NaN (no data). Pixel scale as for NPY.

Then (`to_model_grid`): refuse inf, refuse NaN-only bands, crop to the model's field of view,
resample to the model's pixel scale (survey.readers.resize.resample, flux-conserving), pad/crop
to the survey's stamp size (padding is NaN = empty sky after preprocessing). Embedding with the
version's own encoder is the service's (app/uploads.py).

Every problem raises a named exception: UploadError subclasses here (app/uploads.py adds the
request-body ones), or the survey's CorruptFile/EmptyStamp/CalibrationError (UnreadableCutout) and
the encoder's IncompatibleInput. Sizes (upload_limits.DecodeLimits: side, decoded pixel values, FITS
HDUs and header cards) are checked from headers (PIL's size and mode before load(), FITS NAXISn
before data, the 2880-byte blocks before astropy parses a card, the NPY header) before any pixel
array is allocated.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from astropy.io import fits
from PIL import Image, UnidentifiedImageError

from survey.readers.errors import CorruptFile, EmptyStamp, LayoutMismatch
from survey.readers.fits_header import (
    MAX_PIXEL_SCALE_ARCSEC,
    MIN_PIXEL_SCALE_ARCSEC,
    band_names,
    celestial_wcs,
    centre_position,
    pixel_scale,
)
from survey.readers.fits_scan import scan_layout
from survey.readers.image_folder import image_planes
from survey.readers.resize import conform
from survey.render import BAND_WEIGHTS
from survey.units import DISPLAY_UNITS, SurveyUnits

from .card import ModelCard
from .errors import IncompatibleInput
from .upload_limits import DecodeLimits

MAX_COARSER = 16.0  # an upload may have pixels at most this many times larger than the model's
# The service's PNG cutouts (app/routes/cutouts.py defaults), whose stretch PNG/JPEG uploads invert.
DISPLAY_STRETCH, DISPLAY_Q = 0.5, 8.0

Format = Literal["fits", "png", "jpeg", "npy"]
ScaleSource = Literal["wcs", "header", "field", "assumed"]
EXTENSIONS: dict[str, Format] = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".png": "png",
                                 ".jpg": "jpeg", ".jpeg": "jpeg", ".npy": "npy"}


# ---- named errors (the service maps each class to a status and an error code)


class UploadError(ValueError):
    """Base: an upload that is refused. The message is the sentence the client sees."""


class ImageTooLarge(UploadError):
    """The image's dimensions (from its header) are over DecodeLimits: a side, or the pixel values
    decoding would make (a few kB of PNG can announce 4096^2 RGBA)."""


class TooManyHdus(UploadError):
    """A FITS file with more HDUs than DecodeLimits.max_fits_hdus (counted before parsing)."""


class HeaderTooLarge(UploadError):
    """FITS headers with more cards than DecodeLimits.max_fits_cards (counted before parsing)."""


class UnsupportedFormat(UploadError):
    """Not FITS, PNG, JPEG or NPY (GIF, gzip, text, unknown bytes)."""


class FormatMismatch(UploadError):
    """The file name says one format and the bytes another."""


class EmptyUpload(UploadError):
    """No file part, or a file of 0 bytes."""


class EmptyImage(UploadError):
    """An image with a 0-length axis: no pixels at all."""


class MissingPixelScale(UploadError):
    """A FITS upload whose header has no pixel scale, with no pixel_scale_arcsec field."""


class BadField(UploadError):
    """A form field that cannot be used as given (e.g. a band list with an empty name)."""


class ConflictingInput(UploadError):
    """A form field contradicts the file's header (pixel scale or band names)."""


class UnsupportedArray(UploadError):
    """An NPY array of the wrong dtype (object/pickle, strings, complex) or dimensionality."""


# ---- decoding


@dataclass
class DecodedUpload:
    """Pixels of an upload, planes already in the model's band order. pixels: float32 (C, H, W)."""

    pixels: np.ndarray
    format: Format
    shape: tuple[int, ...]  # as uploaded, (C, H, W)
    bands: tuple[str, ...]
    pixel_scale_arcsec: float
    pixel_scale_source: ScaleSource
    flux: Literal["linear", "display"]
    ra_deg: float | None = None
    dec_deg: float | None = None
    notes: list[str] = field(default_factory=list)


def sniff(data: bytes) -> Format:
    """The format from the first bytes; refuses empty, unknown and unsupported content."""
    if not data:
        raise EmptyUpload("the uploaded file is empty (0 bytes)")
    if data.startswith(b"SIMPLE  ="):
        return "fits"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x93NUMPY"):
        return "npy"
    known = {b"GIF87a": "a GIF image", b"GIF89a": "a GIF image", b"\x1f\x8b": "gzip-compressed (unzip it first)",
             b"PK\x03\x04": "a zip archive", b"%PDF": "a PDF document", b"II*\x00": "a TIFF image",
             b"MM\x00*": "a TIFF image", b"RIFF": "a RIFF (WebP/WAV) file", b"\x89HDF": "an HDF5 file",
             b"BM": "a BMP image"}
    what = next((v for k, v in known.items() if data.startswith(k)), "not a recognised image format")
    raise UnsupportedFormat(f"the file is {what}; send FITS, PNG, JPEG or NPY")


def check_name(filename: str | None, fmt: Format) -> None:
    """A known extension must agree with the bytes (x.fits holding a PNG is the wrong file)."""
    name = (filename or "").lower()
    claimed = next((f for ext, f in EXTENSIONS.items() if name.endswith(ext)), None)
    if claimed is not None and claimed != fmt:
        raise FormatMismatch(f"{filename!r} is named as {claimed.upper()} but its bytes are {fmt.upper()}; "
                             f"send the right file or rename it")


def parse_bands(text: str | None) -> tuple[str, ...] | None:
    """'g, r ,z' -> ('g', 'r', 'z'); None/blank -> None."""
    if text is None or not text.strip():
        return None
    bands = tuple(b.strip() for b in text.split(","))
    if any(not b for b in bands):
        raise BadField(f"bands={text!r} has an empty name; give a comma-separated list like 'g,r,z'")
    if len(set(bands)) != len(bands):
        raise BadField(f"bands={text!r} names a band twice")
    return bands


def decode_upload(data: bytes, filename: str | None, card: ModelCard, *, pixel_scale_arcsec: float | None = None,
                  bands: tuple[str, ...] | None = None, limits: DecodeLimits = DecodeLimits(),
                  units: SurveyUnits | None = None, source_scale: float | None = None) -> DecodedUpload:
    """Bytes -> DecodedUpload. Raises the errors listed in the module docstring.

    `units`: the indexed survey's (survey.units). For a survey of display images a PNG/JPEG is read
    exactly as ingest read its images (survey.readers.image_folder.image_planes), its channels named
    as ingest named them (units.rgb), and with no pixel scale given it is taken to be at
    `source_scale`, the scale of the images ingest read: an uploaded copy of an ingested file lands
    on the very pixels ingest stored.
    """
    fmt = sniff(data)
    check_name(filename, fmt)
    where = f"upload {filename!r}" if filename else "upload"
    if pixel_scale_arcsec is not None and not (
            MIN_PIXEL_SCALE_ARCSEC <= pixel_scale_arcsec <= MAX_PIXEL_SCALE_ARCSEC):  # also refuses NaN
        raise BadField(f"pixel_scale_arcsec={pixel_scale_arcsec:g} is not a usable pixel scale (expected "
                       f"{MIN_PIXEL_SCALE_ARCSEC:g} to {MAX_PIXEL_SCALE_ARCSEC:g} arcsec/px)")
    if fmt == "fits":
        return _decode_fits(data, where, card, pixel_scale_arcsec, bands, limits)
    if fmt == "npy":
        return _decode_npy(data, where, card, pixel_scale_arcsec, bands, limits)
    if units is not None and units.kind == "display":
        return _decode_display_image(data, fmt, where, card, pixel_scale_arcsec, bands, limits, units,
                                     source_scale)
    return _decode_image(data, fmt, where, card, pixel_scale_arcsec, bands, limits)


def _check_dims(shape: tuple[int, ...], where: str, limits: DecodeLimits) -> None:
    """shape (C, H, W) from a header, C counting every plane the decoder will make; before any
    pixel is decoded."""
    if any(n <= 0 for n in shape):
        raise EmptyImage(f"{where}: image is {'x'.join(map(str, shape))} (C x H x W): it has no pixels")
    c, h, w = shape
    if h > limits.max_side_px or w > limits.max_side_px:
        raise ImageTooLarge(f"{where}: image is {w}x{h} px; the limit is {limits.max_side_px} px per side "
                            f"(cut out the region around the object first)")
    if c * h * w > limits.max_decoded_px:
        raise ImageTooLarge(f"{where}: image is {c}x{h}x{w} (C x H x W), {c * h * w:,} pixel values decoded; the "
                            f"limit is {limits.max_decoded_px:,} (cut out the region around the object first)")


def _match_bands(named: tuple[str, ...] | None, n_planes: int, card: ModelCard, where: str,
                 notes: list[str]) -> tuple[tuple[str, ...], list[int]]:
    """(model bands, plane order) for planes named `named`; checks the count and names against the
    card (IncompatibleInput). Names are matched case-insensitively and may be in any order."""
    if named is None:
        card.check_bands(None, n_planes)
        notes.append(f"no band names given; planes taken as the model's bands {','.join(card.bands)} in that order")
        return card.bands, list(range(n_planes))
    if len(named) != n_planes:
        raise IncompatibleInput(f"{where}: {len(named)} band name(s) ({','.join(named)}) for {n_planes} image plane(s)")
    lower = {b.lower(): b for b in card.bands}
    canonical = tuple(lower.get(b.lower(), b) for b in named)
    card.check_bands(None, n_planes)
    if sorted(canonical) != sorted(card.bands):
        card.check_bands(canonical, n_planes)  # raises, naming both lists
    order = [canonical.index(b) for b in card.bands]
    if order != list(range(n_planes)):
        notes.append(f"planes {','.join(canonical)} reordered to the model's {','.join(card.bands)}")
    return card.bands, order


def _scale(header_scale: float | None, header_kind: Literal["wcs", "header"], given: float | None, where: str,
           card: ModelCard, notes: list[str], required: bool) -> tuple[float, ScaleSource]:
    if header_scale is not None:
        if given is not None and abs(given - header_scale) > 0.01 * header_scale:
            raise ConflictingInput(f"{where}: pixel_scale_arcsec={given:g} contradicts the header's "
                                   f"{header_scale:.4g} arcsec/px; drop the field or fix the header")
        return header_scale, header_kind
    if given is not None:
        return given, "field"
    if required:
        raise MissingPixelScale(f"{where}: the FITS header has no celestial WCS or PIXSCALE key, so the pixel "
                                f"scale is unknown; send pixel_scale_arcsec")
    scale = card.preprocess.pixel_scale_arcsec
    notes.append(f"no pixel_scale_arcsec given; assumed the model's {scale:g} arcsec/px")
    return scale, "assumed"


def _decode_fits(data: bytes, where: str, card: ModelCard, given_scale: float | None,
                 given_bands: tuple[str, ...] | None, limits: DecodeLimits) -> DecodedUpload:
    # Record (do not print) astropy's warnings: a client's broken header is not the server's news.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        return _read_fits(data, where, card, given_scale, given_bands, limits, caught)


def _read_fits(data: bytes, where: str, card: ModelCard, given_scale: float | None,
               given_bands: tuple[str, ...] | None, limits: DecodeLimits,
               caught: list[warnings.WarningMessage]) -> DecodedUpload:
    notes: list[str] = []
    layout = scan_layout(data, limits.max_fits_hdus, limits.max_fits_cards)
    if layout.hdus > limits.max_fits_hdus:
        raise TooManyHdus(f"{where}: the FITS file has more than {limits.max_fits_hdus} HDUs; a cutout needs one "
                          f"image HDU (extract it first)")
    if layout.cards > limits.max_fits_cards:
        raise HeaderTooLarge(f"{where}: the FITS headers hold more than {limits.max_fits_cards} cards (the limit; "
                             f"found {layout.cards} by HDU {layout.hdus}); strip the header or extract the image HDU")
    try:
        hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=True)
        len(hdul)  # reads every header now, so truncation shows before any pixel is used
    except Exception as e:  # astropy raises OSError/ValueError/TypeError/IndexError/KeyError for bad bytes
        raise CorruptFile(where, f"not a readable FITS file (truncated or corrupt?): {e}") from e
    truncated = [str(w.message) for w in caught if "truncat" in str(w.message).lower()]
    with hdul:
        image_types = fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU
        images = [(i, h) for i, h in enumerate(hdul) if isinstance(h, image_types) and h.header.get("NAXIS", 0) > 0]
        if not images:
            kinds = sorted({type(h).__name__ for h in hdul if h.header.get("NAXIS", 0) > 0}) or ["empty HDUs"]
            raise LayoutMismatch(where, f"no image HDU with data (the file holds {', '.join(kinds)}); "
                                        f"send a 2-D image or a (C, H, W) cube")
        index, hdu = images[0]
        if len(images) > 1:
            notes.append(f"the file has {len(images)} image HDUs; used HDU {index}")
        header = hdu.header
        naxis = int(header["NAXIS"])
        try:
            dims = tuple(int(header[f"NAXIS{i}"]) for i in range(naxis, 0, -1))
        except (KeyError, ValueError, TypeError) as e:
            raise CorruptFile(where, f"HDU {index}: bad NAXISn keys: {e}") from e
        if naxis not in (2, 3):
            raise LayoutMismatch(where, f"HDU {index} has {naxis} axes {dims}; a cutout is 2-D (H, W) "
                                        f"or a 3-D (C, H, W) cube")
        shape = (1, *dims) if naxis == 2 else dims
        _check_dims(shape, where, limits)
        if truncated:
            raise CorruptFile(where, f"FITS file is truncated: {truncated[0]}")
        named = band_names(header, shape[0])
        if named is not None and given_bands is not None and \
                [b.lower() for b in named] != [b.lower() for b in given_bands]:
            raise ConflictingInput(f"{where}: bands={','.join(given_bands)} contradicts the header's "
                                   f"{','.join(named)}; drop the field or fix the header")
        bands, order = _match_bands(named or given_bands, shape[0], card, where, notes)
        wcs = celestial_wcs(header, where)
        header_scale = pixel_scale(header, wcs, where)
        scale, source = _scale(header_scale, "wcs" if wcs is not None else "header", given_scale, where, card, notes,
                               required=True)
        try:
            pixels = np.asarray(hdu.data, dtype=np.float32)  # also big-endian -> native order
        except Exception as e:  # astropy/numpy raise many types for unreadable data
            raise CorruptFile(where, f"cannot read the pixels of HDU {index}: {e}") from e
    if pixels.shape != tuple(dims):
        raise CorruptFile(where, f"data shape {pixels.shape} differs from the header's {dims}")
    pixels = pixels.reshape(shape)[order]
    pos = None
    try:
        pos = centre_position(header, wcs, (shape[1], shape[2]), where)
    except ValueError:  # an unparsable RA/DEC key does not stop a search by pixels
        notes.append("could not read the sky position from the header")
    return DecodedUpload(pixels, "fits", shape, bands, scale, source, "linear",
                         pos[0] if pos else None, pos[1] if pos else None, notes)


def _decode_npy(data: bytes, where: str, card: ModelCard, given_scale: float | None,
                given_bands: tuple[str, ...] | None, limits: DecodeLimits) -> DecodedUpload:
    notes: list[str] = []
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise UnsupportedArray(f"{where}: NPY format version {version} (structured dtypes) is not supported; "
                                   f"send a plain numeric array")
    except UnsupportedArray:
        raise
    except Exception as e:  # numpy raises ValueError/SyntaxError/EOFError for a broken header
        raise CorruptFile(where, f"not a readable NPY file (truncated or corrupt header?): {e}") from e
    if dtype.hasobject:
        raise UnsupportedArray(f"{where}: NPY holds Python objects (dtype object), which would need pickle; "
                               f"pickled arrays are refused, send a numeric float array")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise UnsupportedArray(f"{where}: NPY dtype {dtype.str} is not a real number type; send a float array")
    dims = tuple(int(n) for n in shape)
    if len(dims) == 4 and dims[0] == 1:
        dims3: tuple[int, ...] = dims[1:]
        notes.append("leading axis of length 1 dropped: (1, C, H, W) -> (C, H, W)")
    elif len(dims) == 3:
        dims3 = dims
    elif len(dims) == 2:
        dims3 = (1, *dims)
    else:
        raise UnsupportedArray(f"{where}: NPY array has ndim={len(dims)} shape {dims}; send (C, H, W) or (H, W)")
    _check_dims(dims3, where, limits)
    bands, order = _match_bands(given_bands, dims3[0], card, where, notes)
    count = math.prod(dims)
    offset = f.tell()
    if len(data) - offset < count * dtype.itemsize:
        raise CorruptFile(where, f"NPY file is truncated: the header announces {count * dtype.itemsize} bytes of "
                                 f"data, the file holds {len(data) - offset}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    arr = arr.reshape(dims[::-1]).transpose() if fortran else arr.reshape(dims)
    pixels = np.asarray(arr, dtype=np.float32).reshape(dims3)[order]
    scale, source = _scale(None, "header", given_scale, where, card, notes, required=False)
    return DecodedUpload(pixels, "npy", dims3, bands, scale, source, "linear", notes=notes)


# Planes the decoder makes of PIL modes that are converted first: palette -> RGBA, bilevel -> RGB.
_DECODED_PLANES = {"P": 4, "PA": 4, "1": 3}


def _open_image(data: bytes, fmt: Format, where: str, limits: DecodeLimits) -> Image.Image:
    """A decoded PIL image, its size (PIL's `size` and mode, read from the header) checked
    before `load()` decodes it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked below
        try:
            img = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(f"{where}: {e}") from e
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            raise CorruptFile(where, f"not a readable {fmt.upper()} image (truncated or corrupt?): {e}") from e
        w, h = img.size
        _check_dims((_DECODED_PLANES.get(img.mode, len(img.getbands())), h, w), where, limits)
        try:
            img.load()  # decode now: truncation shows here
        except Exception as e:  # PIL raises OSError/ValueError/SyntaxError/zlib.error/struct.error
            raise CorruptFile(where, f"not a readable {fmt.upper()} image (truncated or corrupt?): {e}") from e
        return img


def _decode_display_image(data: bytes, fmt: Format, where: str, card: ModelCard, given_scale: float | None,
                          given_bands: tuple[str, ...] | None, limits: DecodeLimits, units: SurveyUnits,
                          source_scale: float | None) -> DecodedUpload:
    """A PNG/JPEG for a survey of display images: the pixels ingest would have stored."""
    notes: list[str] = []
    img = _open_image(data, fmt, where, limits)
    n_channels = len(img.getbands())
    try:
        planes = image_planes(img)
    except Exception as e:  # an unusual mode PIL cannot convert
        raise CorruptFile(where, f"not a readable {fmt.upper()} image: {e}") from e
    full = max(DISPLAY_UNITS.get(u.units.lower(), 1.0) for u in units.per_band)
    if full != 1.0:
        planes = planes * np.float32(full)
    named = given_bands or (units.rgb if units.rgb and len(units.rgb) == planes.shape[0] else None)
    bands, order = _match_bands(named, planes.shape[0], card, where, notes)
    pixels = np.ascontiguousarray(planes[order], dtype=np.float32)
    source: ScaleSource
    if given_scale is None and source_scale is not None:
        scale, source = source_scale, "assumed"
        notes.append(f"no pixel_scale_arcsec given; assumed {source_scale:g} arcsec/px, the scale of the images "
                     f"this survey was ingested from")
    else:
        scale, source = _scale(None, "header", given_scale, where, card, notes, required=False)
    notes.append(f"{fmt.upper()} values read as display values, as this survey's images were ingested")
    return DecodedUpload(pixels, fmt, (n_channels, *planes.shape[1:]), bands, scale, source, "display", notes=notes)


def _decode_image(data: bytes, fmt: Format, where: str, card: ModelCard, given_scale: float | None,
                  given_bands: tuple[str, ...] | None, limits: DecodeLimits) -> DecodedUpload:
    notes: list[str] = []
    img = _open_image(data, fmt, where, limits)
    w, h = img.size
    n_channels = len(img.getbands())
    try:
        rgb, alpha = _display_planes(img)
    except Exception as e:  # an unusual mode PIL cannot convert
        raise CorruptFile(where, f"not a readable {fmt.upper()} image (truncated or corrupt?): {e}") from e
    flux = _invert_lupton(rgb)  # (C, H, W) in display-channel order R,G,B (or one grey plane)
    if alpha is not None:
        flux[:, alpha == 0] = np.nan
    flux = flux[:, ::-1]  # images are drawn top-down; survey row 0 is the bottom (south)
    model = card.bands
    if flux.shape[0] == 1:
        if len(model) != 1:
            raise IncompatibleInput(f"{where}: a greyscale image has 1 band but the model takes {len(model)} "
                                    f"({','.join(model)}); upload a colour image, a FITS cube or an NPY array")
        planes, named = flux, given_bands or model
    else:
        if len(model) not in (2, 3):
            raise IncompatibleInput(f"{where}: an RGB image can stand for 2 or 3 bands; the model takes "
                                    f"{len(model)} ({','.join(model)}): upload a FITS cube or an NPY array")
        # R,G,B of the composite = reddest, middle, bluest band (survey.render.rgb_planes).
        default = (model[-1], model[len(model) // 2], model[0])
        shown = given_bands or default
        if len(shown) != 3:
            raise IncompatibleInput(f"{where}: bands={','.join(shown)} must name what R,G,B show (3 names) "
                                    f"for a colour image")
        if len(model) == 2:  # R = band 1, B = band 0; G is their mean and is dropped
            planes, named = flux[[0, 2]], (shown[0], shown[2])
        else:
            planes, named = flux, shown
        notes.append(f"R,G,B taken as bands {','.join(shown)}")
    planes = planes / np.array([BAND_WEIGHTS.get(b, 1.0) if planes.shape[0] > 1 else 1.0 for b in named],
                               dtype=np.float32)[:, None, None]
    notes.append(f"{fmt.upper()} pixels are a display stretch: inverted the service's Lupton arcsinh "
                 f"composite (stretch {DISPLAY_STRETCH}, Q {DISPLAY_Q:g}); flux is approximate")
    bands, order = _match_bands(named, planes.shape[0], card, where, notes)
    pixels = np.ascontiguousarray(planes[order], dtype=np.float32)
    scale, source = _scale(None, "header", given_scale, where, card, notes, required=False)
    return DecodedUpload(pixels, fmt, (n_channels, h, w), bands, scale, source, "display", notes=notes)


def _display_planes(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """(C, H, W) display values on a 0..255 scale (C = 3 for colour, 1 for grey) and alpha or None."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32) * (255.0 / 65535.0)
        return arr[None], None
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "transparency" in img.info or "A" in img.mode else "RGB")
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        return arr[None], None
    planes = np.moveaxis(arr, -1, 0)
    if img.mode in ("LA", "RGBA"):
        return np.ascontiguousarray(planes[:-1]), planes[-1]
    return np.ascontiguousarray(planes), None


def _invert_lupton(display: np.ndarray) -> np.ndarray:
    """Inverse of astropy's make_lupton_rgb(minimum=0, stretch, Q) on (C, H, W) values 0..255.

    The composite multiplies every channel by f(I)/I, I = mean intensity, f(I) = slope*asinh(I*Q/stretch),
    so mean(display) = f(I): I = sinh(mean/slope)*stretch/Q and channel = display * I / mean.
    """
    slope = 0.1 * 255.0 / np.arcsinh(0.1 * DISPLAY_Q)
    mean = display.mean(axis=0)
    intensity = np.sinh(mean / slope) * (DISPLAY_STRETCH / DISPLAY_Q)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean > 0, intensity / np.maximum(mean, 1e-12), 0.0)
    return (display * ratio[None]).astype(np.float32)


# ---- onto the model's grid


def to_model_grid(up: DecodedUpload, card: ModelCard, stamp_px: int, where: str = "upload") -> np.ndarray:
    """DecodedUpload -> (C, stamp_px, stamp_px) float32 at the model's pixel scale, centred.

    The source is first cropped to what the model can see (plus a margin), so a large image at a
    coarse scale is never upsampled whole. Adds a note when the upload is resampled or padded.
    """
    pixels, target = up.pixels, card.preprocess.pixel_scale_arcsec
    n_inf = int(np.isinf(pixels).sum())
    if n_inf:
        raise IncompatibleInput(f"{where}: {n_inf} pixel(s) are infinite; mark missing pixels as NaN instead")
    finite = np.isfinite(pixels).reshape(pixels.shape[0], -1).any(axis=1)
    if not finite.all():
        empty = "every band" if not finite.any() else "band(s) " + ",".join(
            b for b, ok in zip(up.bands, finite, strict=True) if not ok)
        raise EmptyStamp(where, f"NaN-only image: {empty} without a finite pixel; nothing to search with")
    ratio = up.pixel_scale_arcsec / target  # > 1: the upload's pixels are larger
    if ratio > MAX_COARSER:
        raise IncompatibleInput(f"{where}: pixels of {up.pixel_scale_arcsec:g} arcsec are more than {MAX_COARSER:g} "
                                f"times the model's {target:g} arcsec; the object would span a few pixels")
    c, h, w = pixels.shape
    side = min(h, w) * ratio  # the upload's smaller side, in model pixels
    min_side = max(4, card.preprocess.input_size_px // 4)
    if side < min_side:
        raise IncompatibleInput(f"{where}: the image covers only {side:.1f} px at the model's {target:g} arcsec/px; "
                                f"the model needs at least {min_side} px (it looks at "
                                f"{card.preprocess.input_size_px} px)")
    if side < card.preprocess.input_size_px:
        up.notes.append(f"the image covers {side:.0f} of the model's {card.preprocess.input_size_px} px; "
                        f"the rest is treated as empty sky")
    if not np.isclose(ratio, 1.0, rtol=1e-6):
        up.notes.append(f"resampled from {up.pixel_scale_arcsec:.4g} to {target:g} arcsec/px")
    # exactly as ingest does: display values are resampled as they are, flux is conserved
    pixels = conform(pixels, up.pixel_scale_arcsec, target, stamp_px, conserve_flux=card.preprocess.kind == "flux")
    return pixels
