"""survey.readers.galsim_catalog on the real COSMOS catalogue (tests/data/external)."""

from __future__ import annotations

import pytest
from survey_files import COSMOS

from survey.readers.galsim_catalog import read_galsim_catalog


def test_galsim_catalog_joins_fits_table():
    cat = read_galsim_catalog(
        COSMOS / "real_galaxy_catalog_23.5.fits",
        fits_table=COSMOS / "real_galaxy_catalog_23.5_fits.fits",
    )
    assert len(cat) == 10 and cat["object_id"][0] == "141190"
    assert cat["zphot"][0] == pytest.approx(0.195, abs=1e-3)
    assert cat["gal_filename"][0] == "real_galaxy_images_23.5_n1.fits"
