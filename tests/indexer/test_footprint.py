"""The survey's sky box: known answers, RA wrapping through 0h, unknown positions."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.footprint import sky_footprint


def test_box_and_area_of_an_equatorial_patch() -> None:
    fp = sky_footprint(np.array([150.0, 160.0, 155.0, np.nan]), np.array([0.0, 5.0, 2.0, np.nan]))
    assert fp is not None
    assert (fp["ra_min_deg"], fp["ra_max_deg"], fp["dec_min_deg"], fp["dec_max_deg"]) == (150.0, 160.0, 0.0, 5.0)
    assert fp["n_positioned"] == 3
    # 10 deg of RA times (sin 5 - sin 0) rad: 49.97 deg^2, a little under the flat 50
    assert fp["box_area_deg2"] == pytest.approx(10 * np.degrees(np.sin(np.radians(5.0))), rel=1e-12)


def test_ra_wraps_through_zero() -> None:
    fp = sky_footprint(np.array([355.0, 359.5, 0.5, 8.0, -2.0]), np.zeros(5))
    assert fp is not None
    assert (fp["ra_min_deg"], fp["ra_max_deg"]) == (355.0, 8.0)  # -2 is 358, inside
    assert fp["box_area_deg2"] == 0.0  # every object on the equator: no Dec extent


def test_one_object_and_no_positions() -> None:
    fp = sky_footprint(np.array([10.0]), np.array([-30.0]))
    assert fp is not None and fp["ra_min_deg"] == fp["ra_max_deg"] == 10.0 and fp["box_area_deg2"] == 0.0
    assert sky_footprint(np.array([np.nan, np.nan]), np.array([np.nan, np.nan])) is None
    assert sky_footprint(np.array([]), np.array([])) is None
