"""What a FITS header says about a stamp: celestial WCS, pixel scale, centre position, band names.

Each function returns None when the header does not say, and raises CalibrationError when it says
something unusable (non-square pixels, an unparsable RA), so callers can fall back explicitly.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from .errors import CalibrationError

#: Header keys holding a pixel scale in arcsec when there is no WCS.
SCALE_KEYS = ("PIXSCALE", "PIXSCAL1", "PIXEL_SCALE", "SECPIX")
#: Header keys holding the object's position, (ra, dec) pairs. Not RA_TARG: that is the pointing.
POSITION_KEYS = (("RA", "DEC"), ("RA_OBJ", "DEC_OBJ"), ("OBJRA", "OBJDEC"))
#: Square-pixel tolerance: the two axes' scales may differ by this fraction.
SQUARE_TOL = 0.01
#: Pixel scales (arcsec) outside this range are header mistakes, not instruments: VLBI images have
#: pixels of ~1e-4 arcsec, all-sky maps of ~1 deg. Bounding them keeps every ratio of two scales
#: (resampling factors, output sizes) finite: 1e-300 would make 0.262 / 1e-300 overflow later.
MIN_PIXEL_SCALE_ARCSEC = 1e-6
MAX_PIXEL_SCALE_ARCSEC = 3600.0
#: CTYPE prefixes of celestial axes (FITS WCS paper II); a header naming one means to have a WCS.
_CELESTIAL_CTYPES = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT")


def celestial_wcs(header: fits.Header, source: str = "FITS header", object_id: str | None = None) -> WCS | None:
    """The celestial part of the header's WCS, or None if the header declares none.

    A header whose CTYPEs name celestial axes but whose WCS astropy cannot build (a zero CDELT, a
    singular CD/PC matrix) raises CalibrationError naming the keys: reporting "no celestial WCS"
    would send the user looking for keys that are there. Other broken WCS keywords without a
    celestial CTYPE fall back to None (then PIXSCALE-like keys).
    """
    with warnings.catch_warnings():
        # Old headers trigger harmless "datfix"/"unitfix" notes; they do not change the sky mapping.
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as e:  # astropy raises many types for broken WCS keywords
            if not _declares_celestial(header):
                return None
            raise CalibrationError(source, f"the celestial WCS cannot be used: {_wcs_problem(header, e)}",
                                   object_id) from e
    return wcs.celestial if wcs.has_celestial else None


def _declares_celestial(header: fits.Header) -> bool:
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in (1, 2, 3)]
    return any(c.startswith(_CELESTIAL_CTYPES) for c in ctypes)


def _wcs_problem(header: fits.Header, exc: Exception) -> str:
    """One line: the zero CDELTi if that is the cause, else astropy's first line."""
    zero = [f"CDELT{i}" for i in (1, 2) if _is_zero(header.get(f"CDELT{i}"))]
    if zero and not any(k in header for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")):
        return f"{' and '.join(zero)} = 0 (a pixel of zero size; the pixel-to-sky matrix is singular)"
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"{first} ({type(exc).__name__}); check CDELTi / CDi_j / PCi_j"


def _is_zero(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == 0


def check_pixel_scale(value: float, what: str, source: str, object_id: str | None = None) -> float:
    """`value` arcsec/px if it is within [MIN_PIXEL_SCALE_ARCSEC, MAX_PIXEL_SCALE_ARCSEC], else
    CalibrationError naming `what` (e.g. "PIXSCALE" or "the WCS pixel scale")."""
    if not (np.isfinite(value) and MIN_PIXEL_SCALE_ARCSEC <= value <= MAX_PIXEL_SCALE_ARCSEC):
        raise CalibrationError(source, f"{what} = {value:g} arcsec/px is not a usable pixel scale (expected "
                                       f"{MIN_PIXEL_SCALE_ARCSEC:g} to {MAX_PIXEL_SCALE_ARCSEC:g})", object_id)
    return float(value)


def pixel_scale(
    header: fits.Header, wcs: WCS | None, source: str, object_id: str | None = None
) -> float | None:
    """Arcsec per pixel from the WCS (proj_plane_pixel_scales) or a SCALE_KEYS key.

    A scale that is there but unusable (zero, negative, not a number, outside
    [MIN_PIXEL_SCALE_ARCSEC, MAX_PIXEL_SCALE_ARCSEC]) raises CalibrationError naming its key.
    """
    if wcs is not None:
        sx, sy = proj_plane_pixel_scales(wcs) * 3600.0  # deg -> arcsec
        for axis, s in (("1", sx), ("2", sy)):
            check_pixel_scale(float(s), f"the WCS pixel scale of axis {axis}", source, object_id)
        if abs(sx - sy) > SQUARE_TOL * max(sx, sy):
            raise CalibrationError(
                source, f"non-square pixels ({sx:.4g}, {sy:.4g}) arcsec; resample first", object_id
            )
        return float(np.sqrt(sx) * np.sqrt(sy))  # sqrt(sx * sy) would underflow for tiny scales
    for key in SCALE_KEYS:
        if key in header:
            value = header[key]
            if not (isinstance(value, int | float) and not isinstance(value, bool)):
                raise CalibrationError(source, f"{key} = {value!r} is not a number of arcsec/px", object_id)
            return check_pixel_scale(float(value), key, source, object_id)
    return None


def centre_position(
    header: fits.Header,
    wcs: WCS | None,
    shape_hw: tuple[int, int],
    source: str,
    object_id: str | None = None,
) -> tuple[float, float] | None:
    """(ra, dec) in degrees of the stamp centre from the WCS, else of an RA/DEC key pair."""
    if wcs is not None:
        h, w = shape_hw
        ra, dec = wcs.pixel_to_world_values((w - 1) / 2.0, (h - 1) / 2.0)  # 0-based centre
        if np.isfinite(ra) and np.isfinite(dec):
            return float(ra) % 360.0, float(dec)
    for ra_key, dec_key in POSITION_KEYS:
        if ra_key in header and dec_key in header:
            try:
                ra = _angle(header[ra_key], hours_if_text=True)
                dec = _angle(header[dec_key], hours_if_text=False)
            except (ValueError, TypeError) as e:
                raise CalibrationError(
                    source,
                    f"cannot parse {ra_key}/{dec_key} = {header[ra_key]!r}/"
                    f"{header[dec_key]!r}: {e}",
                    object_id,
                ) from e
            return ra % 360.0, dec
    return None


def band_names(header: fits.Header, n_planes: int) -> tuple[str, ...] | None:
    """Band names from BANDS='g,r,z' or BAND1..BANDn (cubes), BAND/FILTER/FILTERn (one plane).

    HST headers carry FILTER1/FILTER2 (two filter wheels); the one that is not CLEAR* is the band.
    """
    if "BANDS" in header:
        return tuple(b.strip() for b in str(header["BANDS"]).split(",") if b.strip())
    numbered = [header.get(f"BAND{i + 1}") for i in range(n_planes)]
    if n_planes > 1 and all(b is not None for b in numbered):
        return tuple(str(b).strip() for b in numbered)
    if n_planes == 1:
        for key in ("BAND", "FILTER"):
            if str(header.get(key, "")).strip():
                return (str(header[key]).strip(),)
        wheels = [str(header.get(k, "")).strip() for k in ("FILTER1", "FILTER2")]
        named = [f for f in wheels if f and not f.upper().startswith("CLEAR")]
        if len(named) == 1:
            return (named[0],)
    return None


def _angle(v: object, *, hours_if_text: bool) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        if not np.isfinite(v):
            raise ValueError("not finite")
        return float(v)
    # Sexagesimal text: RA '10:00:28.6' is in hours by convention, DEC '+02:12:21' in degrees.
    return float(Angle(str(v).strip(), unit="hourangle" if hours_if_text else "deg").deg)
