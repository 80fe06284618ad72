"""survey.readers.fits_scan walks a FITS file's blocks: it agrees with astropy on the HDUs and cards
of valid files, stops at its bounds (so a 16 MB header costs milliseconds), and leaves bytes it
cannot follow to the full parser."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from astropy.io import fits

from survey.readers.fits_scan import scan_layout

BIG = 10**9


def card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode("ascii")


def header(cards: list[bytes]) -> bytes:
    raw = b"".join(cards) + b"END".ljust(80)
    return raw + b" " * (-len(raw) % 2880)


def many_cards(n: int) -> bytes:
    """A primary header with n HISTORY-like cards and no data."""
    return header([card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0")]
                  + [f"COMMENT card {i}".ljust(80).encode() for i in range(n)])


def many_hdus(n: int) -> bytes:
    ext = header([b"XTENSION= 'IMAGE   '".ljust(80), card("BITPIX", "8"), card("NAXIS", "0"), card("PCOUNT", "0"),
                  card("GCOUNT", "1")])
    return header([card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T")]) + ext * (n - 1)


def astropy_hdus(data: bytes) -> int:
    with fits.open(io.BytesIO(data)) as hdul:
        return len(hdul)


def to_bytes(hdul: fits.HDUList) -> bytes:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["image", "cube_and_table", "compressed", "vector_and_bytes"])
def test_agrees_with_astropy_on_valid_files(kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "image":
        hdul = fits.HDUList([fits.PrimaryHDU(rng.normal(size=(3, 37, 41)).astype(np.float32))])
    elif kind == "cube_and_table":
        table = fits.BinTableHDU.from_columns([fits.Column(name="v", format="PJ()", array=np.array(
            [np.arange(5), np.arange(70)], dtype=object))])  # variable-length: PCOUNT > 0 (a heap)
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((5, 7), np.int16)), table])
    elif kind == "compressed":
        hdul = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(rng.normal(size=(64, 64)).astype(np.float32))])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(np.zeros(10, np.float64)), fits.ImageHDU(np.zeros((2, 3), np.uint8))])
    data = to_bytes(hdul)
    layout = scan_layout(data, BIG, BIG)
    assert layout.complete
    assert layout.hdus == astropy_hdus(data)


def test_counts_every_header_record_before_end() -> None:
    layout = scan_layout(many_cards(100), BIG, BIG)
    assert layout == type(layout)(hdus=1, cards=103, complete=True)


def test_a_16_mb_header_is_refused_in_milliseconds() -> None:
    data = many_cards(200_000)  # 16 MB, ~10 s of astropy parsing
    t0 = time.perf_counter()
    layout = scan_layout(data, 16, 5000)
    assert time.perf_counter() - t0 < 0.1
    assert layout.cards > 5000 and not layout.complete


def test_5001_hdus_are_refused_after_the_bound() -> None:
    data = many_hdus(5001)
    assert scan_layout(data, BIG, BIG).hdus == 5001
    t0 = time.perf_counter()
    layout = scan_layout(data, 16, 5000)
    assert time.perf_counter() - t0 < 0.05
    assert layout.hdus == 17 and not layout.complete


@pytest.mark.parametrize("cut", [100, 2880 + 5, 4000])
def test_truncated_or_garbage_bytes_are_left_to_the_parser(cut: int) -> None:
    data = to_bytes(fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((64, 64), np.float32))]))
    assert not scan_layout(data[:cut], BIG, BIG).complete
    assert not scan_layout(b"SIMPLE  = garbage" + bytes(range(256)) * 12, BIG, BIG).complete
    bad = header([card("SIMPLE", "T"), card("BITPIX", "'x'"), card("NAXIS", "0")])
    assert not scan_layout(bad, BIG, BIG).complete
