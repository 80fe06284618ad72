"""The GalSim "real galaxy" catalog (COSMOS training sample): which FITS file and HDU holds which
galaxy, with its id, position, band and pixel scale.

Columns of the FITS table (GalSim `RealGalaxyCatalog`): IDENT, RA, DEC, MAG, BAND, WEIGHT,
GAL_FILENAME, GAL_HDU, PSF_FILENAME, PSF_HDU, PIXEL_SCALE, NOISE_MEAN, NOISE_VARIANCE,
NOISE_FILENAME, stamp_flux. They become catalog columns `object_id` (str(IDENT)), `ra`, `dec` and
the rest lower-cased (`gal_filename`, `gal_hdu`, `pixel_scale`, `band`, `mag`, ...). The companion
`*_fits.fits` table (photometric z, Sérsic fits) can be joined on IDENT: its scalar columns are
added (`zphot`, `mag_auto`, `flux_radius`, ...); its vector columns (`sersicfit`, `bulgefit`, ...)
are not, since a catalog column holds one number per object.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..catalog import Catalog
from .common import check_positions, check_unique_ids, int_strings
from .errors import CorruptFile, MissingKey

REQUIRED = ("IDENT", "RA", "DEC", "GAL_FILENAME", "GAL_HDU", "PIXEL_SCALE")


def read_galsim_catalog(path: Path | str, fits_table: Path | str | None = None) -> Catalog:
    """Read a GalSim real-galaxy catalog (and optionally its `_fits` table) as a Catalog."""
    path = Path(path)
    table = _table(path)
    missing = [c for c in REQUIRED if c not in table.dtype.names]
    if missing:
        raise MissingKey(
            str(path), f"not a GalSim real-galaxy catalog: missing column(s) {missing}"
        )
    ids = int_strings(table["IDENT"], "IDENT", str(path))
    check_unique_ids(ids, str(path))
    cols: dict[str, np.ndarray] = {"object_id": ids}
    cols["ra"] = check_positions(ids, table["RA"], table["DEC"], str(path))
    cols["dec"] = np.asarray(table["DEC"], dtype=np.float64)
    cols.update(_scalar_columns(table, skip=("IDENT", "RA", "DEC")))
    if fits_table is not None:
        extra = _table(Path(fits_table))
        if "IDENT" not in extra.dtype.names:
            raise MissingKey(str(fits_table), "no IDENT column to join on")
        row_of = {
            oid: i for i, oid in enumerate(int_strings(extra["IDENT"], "IDENT", str(fits_table)))
        }
        rows = np.array([row_of.get(oid, -1) for oid in ids])
        for name, values in _scalar_columns(extra, skip=("IDENT",)).items():
            if name in cols:
                continue
            joined = values[np.maximum(rows, 0)]
            if values.dtype.kind in "fiu":  # galaxies missing from the fits table get NaN
                joined = np.where(rows >= 0, joined.astype(np.float64), np.nan)
            cols[name] = joined
    return Catalog(cols)


def _table(path: Path) -> np.ndarray:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
                data = None if hdu is None else np.asarray(hdu.data)
        except (OSError, ValueError, TypeError) as e:
            raise CorruptFile(
                str(path), f"not a readable FITS table (truncated or corrupt?): {e}"
            ) from e
    if any("truncated" in str(w.message) for w in caught):
        raise CorruptFile(str(path), "FITS file is truncated")
    if data is None:
        raise MissingKey(str(path), "no binary table HDU: not a catalog")
    return data


def _scalar_columns(table: np.ndarray, skip: tuple[str, ...]) -> dict[str, np.ndarray]:
    cols = {}
    for name in table.dtype.names:
        if name in skip or table.dtype[name].shape:
            continue
        values = np.asarray(table[name])
        if values.dtype.kind in "SU":
            values = np.array(
                [v.decode().strip() if isinstance(v, bytes) else str(v).strip() for v in values],
                dtype=object,
            )
        elif values.dtype.byteorder not in "=|":
            values = values.astype(values.dtype.newbyteorder("="))
        cols[name.lower()] = values
    return cols
