"""Where on the sky a survey's objects are: the smallest RA-Dec box holding every positioned object.

RA wraps at 0/360 deg, so the box's RA interval is the complement of the largest gap between the
sorted RAs (the gap through 0h included): a survey at RA 350..10 deg gives ra_min=350, ra_max=10,
not 10..350. Objects without a position (ra/dec NaN) are counted but not placed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def sky_footprint(ra_deg: np.ndarray, dec_deg: np.ndarray) -> dict[str, Any] | None:
    """{n_positioned, ra_min_deg, ra_max_deg, dec_min_deg, dec_max_deg, box_area_deg2} of the
    finite (ra, dec) pairs (degrees, ICRS), or None when no object has a position.

    ra_min_deg > ra_max_deg means the box runs through RA 0. box_area_deg2 is the area of the box on
    the sphere (not of the cells actually observed), 0 for a single object.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    placed = np.isfinite(ra) & np.isfinite(dec)
    if not placed.any():
        return None
    ra, dec = np.sort(np.mod(ra[placed], 360.0)), dec[placed]
    gaps = np.diff(ra, append=ra[0] + 360.0)  # gaps[i]: from ra[i] up to the next RA, the last one through 0h
    widest = int(np.argmax(gaps))
    ra_min, ra_max = float(ra[(widest + 1) % len(ra)]), float(ra[widest])
    width_deg = 360.0 - float(gaps[widest])
    dec_min, dec_max = float(dec.min()), float(dec.max())
    area_sr = math.radians(width_deg) * (math.sin(math.radians(dec_max)) - math.sin(math.radians(dec_min)))
    return {"n_positioned": int(placed.sum()), "ra_min_deg": ra_min, "ra_max_deg": ra_max,
            "dec_min_deg": dec_min, "dec_max_deg": dec_max, "box_area_deg2": area_sr * (180.0 / math.pi) ** 2}
