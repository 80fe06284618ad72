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


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The celestial part of the header's WCS, or None if it has none."""
    with warnings.catch_warnings():
        # Old headers trigger harmless "datfix"/"unitfix" notes; they do not change the sky mapping.
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception:  # astropy raises many types for broken WCS keywords; fall back to keys
            return None
    return wcs.celestial if wcs.has_celestial else None


def pixel_scale(
    header: fits.Header, wcs: WCS | None, source: str, object_id: str | None = None
) -> float | None:
    """Arcsec per pixel from the WCS (proj_plane_pixel_scales) or a SCALE_KEYS key."""
    if wcs is not None:
        sx, sy = proj_plane_pixel_scales(wcs) * 3600.0  # deg -> arcsec
        if not (np.isfinite(sx) and np.isfinite(sy)) or sx <= 0 or sy <= 0:
            raise CalibrationError(
                source, f"WCS pixel scale ({sx}, {sy}) arcsec is invalid", object_id
            )
        if abs(sx - sy) > SQUARE_TOL * max(sx, sy):
            raise CalibrationError(
                source, f"non-square pixels ({sx:.4g}, {sy:.4g}) arcsec; resample first", object_id
            )
        return float(np.sqrt(sx * sy))
    for key in SCALE_KEYS:
        if key in header and _finite_positive(header[key]):
            return float(header[key])
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


def _finite_positive(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) and v > 0


def _angle(v: object, *, hours_if_text: bool) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        if not np.isfinite(v):
            raise ValueError("not finite")
        return float(v)
    # Sexagesimal text: RA '10:00:28.6' is in hours by convention, DEC '+02:12:21' in degrees.
    return float(Angle(str(v).strip(), unit="hourangle" if hours_if_text else "deg").deg)
