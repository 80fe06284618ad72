"""Units and meanings of the simulated catalog's columns (the docs' column table is built from
these and from a real simulated catalog, and a test checks that every column is described).

Per-band columns are written with ``{b}`` for the band name (``mag_{b}`` -> ``mag_g``, ``mag_r``, ...).
"""

from __future__ import annotations

import re

# name -> (unit, meaning)
COLUMNS: dict[str, tuple[str, str]] = {
    "object_id": ("", "stable unique ID, `sim-` + row number in the survey"),
    "ra": ("deg", "right ascension (ICRS), uniform on the sphere inside the footprint"),
    "dec": ("deg", "declination (ICRS)"),
    "class": ("", "truth label: elliptical, lenticular, spiral, edge_on, irregular, merger, star or lens"),
    "z": ("", "redshift: the galaxy's, the deflector's for a lens, 0 for a star"),
    "abs_mag_r": ("AB mag", "rest-frame absolute r magnitude (no K-correction); 0 for stars and lenses"),
    "mag_r_intrinsic": ("AB mag", "apparent r of the model before extinction (sets the flux); 0 for lenses"),
    "hlr_arcsec": ("arcsec", "half-light radius of the galaxy model before the PSF; 0 for stars and lenses"),
    "axis_ratio": ("", "minor/major axis ratio q of the galaxy model (1 for stars and lenses)"),
    "pa_deg": ("deg", "position angle of the major axis, counter-clockwise from the stamp's +x (column) axis"),
    "g_r": ("mag", "model g-r colour, observed frame, before extinction (type- and z-dependent)"),
    "r_z": ("mag", "model r-z colour, observed frame, before extinction"),
    "ebv": ("mag", "Galactic E(B-V) from the simulator's smooth toy dust map"),
    "dx_px": ("px", "centroid offset from the stamp centre along x (columns), U(-0.5, 0.5)"),
    "dy_px": ("px", "centroid offset from the stamp centre along y (rows), U(-0.5, 0.5)"),
    "is_lens": ("", "truth: a galaxy-scale strong lens (same as class == lens)"),
    "einstein_radius_arcsec": ("arcsec", "SIE Einstein radius of a lens; 0 otherwise"),
    "z_source": ("", "redshift of the lensed source; 0 for non-lenses"),
    "artifact_kind": ("", "instrumental artifact painted on the stamp: '' (none), satellite_trail, cosmic_ray, "
                      "bad_column, saturation_bleed or ghost"),
    "psf_fwhm_{b}": ("arcsec", "seeing: FWHM of the Moffat (beta = 3.5) PSF in band {b}"),
    "depth_{b}": ("AB mag", "5-sigma point-source depth in band {b}"),
    "noise_sigma_{b}": ("nanomaggies/pixel", "sigma of the Gaussian sky noise in band {b} (follows from depth and "
                        "seeing)"),
    "mag_{b}": ("AB mag", "total flux in the stamp in band {b}: the rendered model after extinction, before noise "
                "and artifacts"),
}


def describe(name: str) -> tuple[str, str]:
    """(unit, meaning) of a catalog column; KeyError for an undocumented one."""
    if name in COLUMNS:
        return COLUMNS[name]
    for pattern, (unit, meaning) in COLUMNS.items():
        if "{b}" in pattern:
            m = re.fullmatch(re.escape(pattern).replace(r"\{b\}", "(?P<b>[a-zA-Z]+)"), name)
            if m:
                return unit, meaning.replace("{b}", m["b"])
    raise KeyError(f"catalog column {name!r} is not described in survey.simulate.columns.COLUMNS")
