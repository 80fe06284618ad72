"""A corpus of uploads that `POST /api/v1/search/cutout` must refuse with a 4xx naming the problem.

Each case builds its request lazily (`case.request()` -> keyword arguments for `client.post`) so
that collecting the tests allocates nothing; the "huge" cases only *claim* 10^4 x 10^4 pixels in
a header (or compress them to a few kB), so a service that decodes before checking sizes would be
the one to allocate 400 MB. The decode bombs are real files under the byte limit that decode to far
more than the service's `max_upload_decoded_px`: a 65 kB PNG of 4096^2 RGBA (67M values, ~1.4 GB
through a decoder that checked only the side), a 263 kB JPEG of 4096^2 RGB, and a ~100 kB
tile-compressed FITS of 3 x 4096^2 (201 MB as float32). The model is the tiny survey's: bands
g,r,z at 0.262"/px. Requests assume a service with `MAX_UPLOAD_BYTES` as its `max_upload_bytes`.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from astropy.io import fits
from PIL import Image

MAX_UPLOAD_BYTES = 1024 * 1024  # the bombs below are all under it
BANDS = ("g", "r", "z")
SCALE = 0.262
URL = "/api/v1/search/cutout"

Request = dict[str, Any]


# ---- builders of valid files (then broken in one way per case)


def galaxy(planes: int = 3, size: int = 64, seed: int = 0) -> np.ndarray:
    """(planes, size, size) float32: sky noise plus an elliptical Gaussian, in nanomaggies."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    blob = np.exp(-0.5 * ((x / 4.0) ** 2 + (y / 2.5) ** 2))
    return np.stack([(i + 1) * 2.0 * blob + rng.normal(0, 0.01, blob.shape) for i in range(planes)]).astype(np.float32)


def wcs_header(scale_x: float = SCALE, scale_y: float = SCALE, size: int = 64) -> fits.Header:
    h = fits.Header()
    for key, value in (("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN"), ("CRVAL1", 150.0), ("CRVAL2", 2.0),
                       ("CRPIX1", (size + 1) / 2), ("CRPIX2", (size + 1) / 2), ("CDELT1", -scale_x / 3600),
                       ("CDELT2", scale_y / 3600), ("CUNIT1", "deg"), ("CUNIT2", "deg")):
        h[key] = value
    return h


def scale_header(arcsec_per_px: float) -> fits.Header:
    h = fits.Header()
    h["PIXSCALE"] = arcsec_per_px
    return h


def fits_bytes(data: np.ndarray | None, header: fits.Header | None = None, bands: tuple[str, ...] | None = BANDS,
               extra_hdus: list[fits.hdu.base.ExtensionHDU] | None = None) -> bytes:
    hdr = fits.Header() if header is None else header.copy()
    if bands is not None and data is not None:
        hdr["BANDS"] = ",".join(bands)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(data, header=hdr), *(extra_hdus or [])]).writeto(buf)
    return buf.getvalue()


def header_only_fits(**cards: Any) -> bytes:
    """A primary header with the given NAXIS cards and no data at all (2880 bytes)."""
    h = fits.Header([("SIMPLE", True), ("BITPIX", -32)])
    for key, value in cards.items():
        h[key] = value
    return h.tostring(endcard=True, padding=True).encode("ascii")


def _card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode("ascii")


def _header_block(cards: list[bytes]) -> bytes:
    raw = b"".join(cards) + b"END".ljust(80)
    return raw + b" " * (-len(raw) % 2880)


def fits_many_cards(n: int) -> bytes:
    """A valid FITS file: a primary header of n COMMENT cards and a data-less image (astropy parses
    ~20k cards a second, so 200k took the service 10 s of CPU)."""
    comments = [f"COMMENT card {i}".ljust(80).encode() for i in range(n)]
    return _header_block([_card("SIMPLE", "T"), _card("BITPIX", "8"), _card("NAXIS", "0"), *comments])


def fits_many_hdus(n: int) -> bytes:
    """A valid FITS file of n HDUs without data (5,001 took the service 2.2 s to open)."""
    ext = _header_block([b"XTENSION= 'IMAGE   '".ljust(80), _card("BITPIX", "8"), _card("NAXIS", "0"),
                         _card("PCOUNT", "0"), _card("GCOUNT", "1")])
    return _header_block([_card("SIMPLE", "T"), _card("BITPIX", "8"), _card("NAXIS", "0"), _card("EXTEND", "T")]) \
        + ext * (n - 1)


def good_fits() -> bytes:
    return fits_bytes(galaxy(), wcs_header())


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """An NPY v1.0 header announcing `shape` with no data after it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def image_bytes(fmt: str, mode: str = "RGB", size: int = 64) -> bytes:
    rng = np.random.default_rng(1)
    channels = {"RGB": 3, "L": 1}[mode]
    arr = rng.integers(0, 255, (size, size, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@cache
def huge_png(side: int = 10_000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels, ~12 kB, built row by row (never in memory)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@cache
def png_rgba_bomb(side: int = 4096) -> bytes:
    """A valid 8-bit RGBA PNG of side x side transparent pixels, ~65 kB for 4096 (built row by row)."""
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (4 * side)  # filter byte + RGBA
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)  # bit depth 8, colour type 6 = RGBA
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@cache
def jpeg_bomb(side: int = 4096) -> bytes:
    """A valid black RGB JPEG of side x side pixels, ~263 kB for 4096."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


@cache
def fits_compressed_bomb(planes: int = 3, side: int = 4096) -> bytes:
    """A valid tile-compressed (GZIP_1, one tile per plane) FITS cube of zeros, (planes, side, side),
    ~100 kB for 3 x 4096^2: the header says so only in ZNAXISn, which astropy shows as NAXISn."""
    hdu = fits.CompImageHDU(np.zeros((planes, side, side), np.int16), compression_type="GZIP_1",
                            tile_shape=(1, side, side))
    hdu.header["BANDS"] = ",".join(BANDS)
    hdu.header["PIXSCALE"] = SCALE
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body built by hand (for the streamed and malformed cases)."""
    boundary = "skysift-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{fn}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, fn, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def chunks(body: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


# ---- the corpus


@dataclass(frozen=True)
class BadUpload:
    name: str
    build: Callable[[], Request]
    status: int
    code: str
    keyword: str  # must appear (case-insensitively) in the response's `detail`

    def request(self) -> Request:
        return self.build()


def file(filename: str, data: Callable[[], bytes], **fields: str) -> Callable[[], Request]:
    return lambda: {"files": {"file": (filename, data(), "application/octet-stream")}, "data": fields}


def _nan_band() -> bytes:
    x = galaxy()
    x[2] = np.nan
    return npy_bytes(x)


def _with_inf() -> bytes:
    x = galaxy()
    x[1, 10:12, 10:12] = np.inf
    return npy_bytes(x)


def _truncated(data: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
    return lambda: (lambda b: b[: int(len(b) * keep)])(data())


def _too_big_body() -> Request:
    return {"files": {"file": ("big.fits", b"SIMPLE  =" + b"\x00" * (MAX_UPLOAD_BYTES + 100_000))}}


def _too_big_chunked() -> Request:
    body, ctype = multipart({}, [("file", "big.npy", b"\x93NUMPY" + b"\x00" * (MAX_UPLOAD_BYTES + 100_000))])
    return {"content": chunks(body), "headers": {"content-type": ctype}}  # no Content-Length: counted as read


def _two_files() -> Request:
    body, ctype = multipart({}, [("file", "a.npy", npy_bytes(galaxy())), ("file", "b.npy", npy_bytes(galaxy()))])
    return {"content": body, "headers": {"content-type": ctype}}


def _broken_multipart() -> Request:
    return {"content": b"--nope\r\nthis is not a form", "headers": {"content-type": "multipart/form-data; boundary=x"}}


CASES: list[BadUpload] = [
    # -- not an image at all
    BadUpload("empty_file", file("empty.fits", lambda: b""), 422, "empty_upload", "empty"),
    BadUpload("garbage_bytes", file("noise.bin", lambda: bytes(range(7, 250)) * 20), 415, "unsupported_format",
              "FITS, PNG, JPEG or NPY"),
    BadUpload("text_file", file("notes.txt", lambda: b"M87 is a giant elliptical\n"), 415, "unsupported_format",
              "not a recognised"),
    BadUpload("gif_image", file("anim.gif", lambda: image_bytes("GIF")), 415, "unsupported_format", "GIF"),
    BadUpload("gzipped_fits", file("cube.fits.gz", lambda: gzip.compress(good_fits())), 415, "unsupported_format",
              "gzip"),
    BadUpload("png_named_fits", file("galaxy.fits", lambda: image_bytes("PNG")), 422, "format_mismatch",
              "named as FITS"),
    BadUpload("fits_named_png", file("galaxy.png", good_fits), 422, "format_mismatch", "named as PNG"),
    BadUpload("npy_named_jpg", file("galaxy.jpg", lambda: npy_bytes(galaxy())), 422, "format_mismatch",
              "named as JPEG"),
    # -- broken FITS
    BadUpload("fits_truncated_data", file("cut.fits", _truncated(good_fits, 0.5)), 422, "unreadable_cutout",
              "truncated"),
    BadUpload("fits_truncated_header", file("cut.fits", lambda: good_fits()[:1000]), 422, "unreadable_cutout",
              "FITS"),
    BadUpload("fits_garbage_after_simple", file("bad.fits", lambda: b"SIMPLE  = garbage" + bytes(range(256)) * 12),
              422, "unreadable_cutout", "FITS"),
    BadUpload("fits_no_wcs_no_scale", file("nowcs.fits", lambda: fits_bytes(galaxy())), 422, "missing_pixel_scale",
              "pixel_scale_arcsec"),
    BadUpload("fits_wrong_band_count", file("two.fits", lambda: fits_bytes(galaxy(2), wcs_header(), bands=("g", "r"))),
              422, "incompatible_cutout", "2 band(s)"),
    BadUpload("fits_2d_one_band", file("r.fits", lambda: fits_bytes(galaxy(1)[0], wcs_header(), bands=None)),
              422, "incompatible_cutout", "1 band(s) but the model takes 3"),
    BadUpload("fits_other_bands", file("ugr.fits", lambda: fits_bytes(galaxy(), wcs_header(), bands=("u", "g", "i"))),
              422, "incompatible_cutout", "u,g,i"),
    BadUpload("fits_nan_only", file("nan.fits", lambda: fits_bytes(np.full((3, 64, 64), np.nan, np.float32),
                                                                    wcs_header())), 422, "unreadable_cutout", "NaN"),
    BadUpload("fits_zero_size", file("empty.fits", lambda: header_only_fits(NAXIS=2, NAXIS1=0, NAXIS2=0)), 422,
              "empty_image", "no pixels"),
    BadUpload("fits_huge_header", file("huge.fits", lambda: header_only_fits(NAXIS=2, NAXIS1=10_000, NAXIS2=10_000)),
              413, "image_too_large", "10000x10000"),
    BadUpload("fits_12k_header_cards", file("cards.fits", lambda: fits_many_cards(12_000)), 413, "header_too_large",
              "more than 5000 cards"),
    BadUpload("fits_300_hdus", file("hdus.fits", lambda: fits_many_hdus(300)), 413, "too_many_hdus",
              "more than 16 HDUs"),
    BadUpload("fits_4d", file("4d.fits", lambda: fits_bytes(np.zeros((1, 3, 8, 8), np.float32), bands=None)),
              422, "unreadable_cutout", "4 axes"),
    BadUpload("fits_empty_hdus", file("nothing.fits", lambda: fits_bytes(None, extra_hdus=[fits.ImageHDU()])),
              422, "unreadable_cutout", "no image HDU"),
    BadUpload("fits_table_only", file("table.fits", lambda: fits_bytes(None, extra_hdus=[fits.BinTableHDU.from_columns(
        [fits.Column(name="ra", format="D", array=np.array([150.0]))])])), 422, "unreadable_cutout", "BinTableHDU"),
    BadUpload("fits_non_square_pixels", file("rect.fits", lambda: fits_bytes(galaxy(), wcs_header(0.262, 0.5))),
              422, "unreadable_cutout", "non-square"),
    # -- pixel scales that are there but unusable (once a 500: 0.262 / 1e-300 overflowed in resampling)
    BadUpload("fits_pixscale_tiny", file("tiny.fits", lambda: fits_bytes(galaxy(), scale_header(1e-300))), 422,
              "unreadable_cutout", "PIXSCALE = 1e-300"),
    BadUpload("fits_pixscale_zero", file("zero.fits", lambda: fits_bytes(galaxy(), scale_header(0.0))), 422,
              "unreadable_cutout", "PIXSCALE = 0"),
    BadUpload("fits_wcs_scale_tiny", file("tiny.fits", lambda: fits_bytes(galaxy(), wcs_header(1e-300, 1e-300))),
              422, "unreadable_cutout", "WCS pixel scale"),
    BadUpload("fits_cdelt_zero", file("cdelt0.fits", lambda: fits_bytes(galaxy(), wcs_header(0.0, 0.0))), 422,
              "unreadable_cutout", "CDELT1 and CDELT2 = 0"),
    BadUpload("fits_cdelt2_zero", file("cdelt0.fits", lambda: fits_bytes(galaxy(), wcs_header(SCALE, 0.0))), 422,
              "unreadable_cutout", "CDELT2 = 0"),
    BadUpload("tiny_pixel_scale_field", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="1e-300"), 422,
              "invalid_parameter", "pixel_scale_arcsec"),
    BadUpload("subnormal_pixel_scale_field", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="5e-324"),
              422, "invalid_parameter", "pixel_scale_arcsec"),
    BadUpload("fits_scale_contradicts_wcs", file("cube.fits", good_fits, pixel_scale_arcsec="0.5"), 422,
              "conflicting_input", "contradicts the header"),
    BadUpload("fits_bands_field_mismatch", file("cube.fits", good_fits, bands="u,g,r"), 422, "conflicting_input",
              "bands=u,g,r contradicts"),
    # -- broken NPY
    BadUpload("npy_ndim_1", file("v.npy", lambda: npy_bytes(np.arange(10.0))), 422, "unsupported_array", "ndim=1"),
    BadUpload("npy_ndim_5", file("v.npy", lambda: npy_bytes(np.zeros((1, 1, 3, 8, 8)))), 422, "unsupported_array",
              "ndim=5"),
    BadUpload("npy_strings", file("s.npy", lambda: npy_bytes(np.array([["g", "r"], ["z", "i"]]))), 422,
              "unsupported_array", "dtype <U1"),
    BadUpload("npy_object_pickle", file("p.npy", lambda: npy_bytes(np.array([{"x": 1}, None], dtype=object),
                                                                   allow_pickle=True)), 422, "unsupported_array",
              "pickle"),
    BadUpload("npy_complex", file("c.npy", lambda: npy_bytes(galaxy().astype(np.complex64))), 422,
              "unsupported_array", "dtype <c8"),
    BadUpload("npy_truncated", file("t.npy", _truncated(lambda: npy_bytes(galaxy()), 0.6)), 422, "unreadable_cutout",
              "truncated"),
    BadUpload("npy_broken_header", file("h.npy", lambda: b"\x93NUMPY\x01\x00\x20\x00{'descr': oops"), 422,
              "unreadable_cutout", "NPY"),
    BadUpload("npy_zero_size", file("z.npy", lambda: npy_bytes(np.zeros((3, 0, 0), np.float32))), 422,
              "empty_image", "no pixels"),
    BadUpload("npy_huge_header", file("huge.npy", lambda: npy_header_only((3, 10_000, 10_000))), 413,
              "image_too_large", "10000x10000"),
    BadUpload("npy_nan_band", file("nan.npy", _nan_band), 422, "unreadable_cutout", "band(s) z"),
    BadUpload("npy_inf_pixels", file("inf.npy", _with_inf), 422, "incompatible_cutout", "4 pixel(s) are infinite"),
    BadUpload("npy_wrong_band_count", file("two.npy", lambda: npy_bytes(galaxy(2))), 422, "incompatible_cutout",
              "2 band(s)"),
    BadUpload("npy_bands_field_not_model", file("c.npy", lambda: npy_bytes(galaxy()), bands="u,g,i"), 422,
              "incompatible_cutout", "u,g,i"),
    BadUpload("npy_bands_field_count", file("c.npy", lambda: npy_bytes(galaxy()), bands="g,r"), 422,
              "incompatible_cutout", "2 band name(s)"),
    BadUpload("npy_bands_field_blank_name", file("c.npy", lambda: npy_bytes(galaxy()), bands="g,,z"), 422,
              "invalid_parameter", "empty name"),
    BadUpload("npy_bands_field_repeated", file("c.npy", lambda: npy_bytes(galaxy()), bands="g,g,z"), 422,
              "invalid_parameter", "twice"),
    BadUpload("npy_too_small", file("tiny.npy", lambda: npy_bytes(galaxy(size=3))), 422, "incompatible_cutout",
              "covers only"),
    BadUpload("npy_too_coarse", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="10"), 422,
              "incompatible_cutout", "more than 16 times"),
    # -- broken PNG/JPEG
    BadUpload("jpeg_truncated", file("cut.jpg", _truncated(lambda: image_bytes("JPEG"), 0.5)), 422,
              "unreadable_cutout", "truncated"),
    BadUpload("png_truncated", file("cut.png", _truncated(lambda: image_bytes("PNG"), 0.5)), 422,
              "unreadable_cutout", "PNG"),
    BadUpload("png_huge", file("huge.png", huge_png), 413, "image_too_large", "10000x10000"),
    # -- decode bombs: small files, huge pixels (refused from the header, before decoding)
    BadUpload("png_rgba_bomb", file("bomb.png", png_rgba_bomb), 413, "image_too_large", "4x4096x4096"),
    BadUpload("jpeg_bomb", file("bomb.jpg", jpeg_bomb), 413, "image_too_large", "3x4096x4096"),
    BadUpload("fits_tile_compressed_bomb", file("bomb.fits", fits_compressed_bomb), 413, "image_too_large",
              "3x4096x4096"),
    BadUpload("npy_header_bomb", file("bomb.npy", lambda: npy_header_only((3, 4096, 4096))), 413, "image_too_large",
              "pixel values decoded"),
    BadUpload("png_greyscale_for_3_bands", file("grey.png", lambda: image_bytes("PNG", "L")), 422,
              "incompatible_cutout", "greyscale"),
    BadUpload("png_bands_field_count", file("c.png", lambda: image_bytes("PNG"), bands="z,r"), 422,
              "incompatible_cutout", "R,G,B"),
    # -- form fields
    BadUpload("negative_pixel_scale", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="-0.262"), 422,
              "invalid_parameter", "pixel_scale_arcsec"),
    BadUpload("zero_pixel_scale", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="0"), 422,
              "invalid_parameter", "pixel_scale_arcsec"),
    BadUpload("text_pixel_scale", file("c.npy", lambda: npy_bytes(galaxy()), pixel_scale_arcsec="fine"), 422,
              "invalid_parameter", "pixel_scale_arcsec"),
    BadUpload("k_zero", file("c.npy", lambda: npy_bytes(galaxy()), k="0"), 422, "invalid_parameter", "k:"),
    BadUpload("k_above_max", file("c.npy", lambda: npy_bytes(galaxy()), k="100000"), 422, "invalid_parameter",
              "k: Input should be less than or equal to 500"),
    BadUpload("z_min_above_z_max", file("c.npy", lambda: npy_bytes(galaxy()), z_min="0.5", z_max="0.1"), 422,
              "invalid_parameter", "z_min=0.5"),
    BadUpload("misspelt_field", file("c.npy", lambda: npy_bytes(galaxy()), pixelscale="0.262"), 422,
              "invalid_parameter", "pixelscale"),
    # -- the request itself
    BadUpload("oversized_body", _too_big_body, 413, "upload_too_large", "limit"),
    BadUpload("oversized_chunked_body", _too_big_chunked, 413, "upload_too_large", "limit"),
    BadUpload("no_file_part", lambda: {"files": {"k": (None, "5")}}, 422, "empty_upload", "'file'"),
    BadUpload("file_sent_as_text", lambda: {"files": {"file": (None, "SIMPLE  = T")}}, 422, "empty_upload",
              "as a file part"),
    BadUpload("file_part_misnamed", lambda: {"files": {"image": ("c.npy", npy_bytes(galaxy()))}}, 422, "bad_form",
              "name it 'file'"),
    BadUpload("two_files", _two_files, 422, "bad_form", "too many files"),
    BadUpload("broken_multipart", _broken_multipart, 422, "bad_form", "multipart"),
    BadUpload("json_body", lambda: {"json": {"file": "galaxy.fits"}}, 415, "unsupported_media_type",
              "multipart/form-data"),
]
