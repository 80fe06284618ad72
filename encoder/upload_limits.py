"""DecodeLimits: what an uploaded file may make encoder/upload.py allocate, checked from its headers.

A module of its own, free of heavy imports, so that ServiceSettings (imported by every CLI command)
takes its defaults from here without importing torch through encoder/upload.py.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SIDE_PX = 4096  # per image side
# Pixel values decoded (C x H x W, every plane the decoder makes): 2**22 is a 2048^2 image in one band
# or 1182^2 in three, 16 MB as float32. A 65 kB PNG can announce 4096^2 RGBA (67M values, ~1.4 GB
# through decoding); checking the side alone let it through.
MAX_DECODED_PX = 2**22
# FITS structure, counted from the 2880-byte blocks before astropy parses a card (survey.readers.fits_scan):
# astropy needs ~50 us a card, so 200k cards cost 10 s of CPU; a cutout has a few HDUs of a few hundred cards.
MAX_FITS_HDUS = 16
MAX_FITS_CARDS = 5000  # 80-byte header records over all HDUs, blank ones included


@dataclass(frozen=True)
class DecodeLimits:
    """What an upload may make the decoder allocate, checked from headers before any pixel is
    decoded (the service builds this from its settings)."""

    max_side_px: int = MAX_SIDE_PX
    max_decoded_px: int = MAX_DECODED_PX  # C x H x W pixel values
    max_fits_hdus: int = MAX_FITS_HDUS
    max_fits_cards: int = MAX_FITS_CARDS
