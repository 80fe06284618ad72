"""survey.readers.mosaic: cutouts around catalogued sources from one FITS mosaic with a WCS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from survey_files import tan_header

from survey.readers.errors import CalibrationError, OffImage
from survey.readers.mosaic import Mosaic


def write_mosaic(tmp_path: Path, sources: list[tuple[str, float, float]]) -> tuple[Path, Path, WCS]:
    shape = (120, 100)
    h = tan_header(150.0, 2.0, 0.25, shape)
    h["FILTER"] = "i"
    data = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape)
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "mosaic.fits")
    lines = ["object_id,ra,dec,mag"] + [f"{o},{r},{d},20.5" for o, r, d in sources]
    (tmp_path / "sources.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "mosaic.fits", tmp_path / "sources.csv", WCS(h)


def test_mosaic_cutouts_partial_and_off_image(tmp_path):
    shape = (120, 100)
    w = WCS(tan_header(150.0, 2.0, 0.25, shape))
    inside = w.pixel_to_world_values(40, 70)
    edge = w.pixel_to_world_values(2, 3)
    off = w.pixel_to_world_values(-500, 60)
    image, csv, _ = write_mosaic(tmp_path, [("in", *inside), ("edge", *edge), ("off", *off)])
    m = Mosaic(image, csv, size_px=15)
    assert m.bands == ("i",) and m.pixel_scale_arcsec == pytest.approx(0.25)
    c = m.cutout(0)
    assert c.pixels.shape == (1, 15, 15) and not np.isnan(c.pixels).any()
    assert c.pixels[0, 7, 7] == 70 * 100 + 40  # odd size: the source is on the central pixel
    e = m.cutout(1)
    assert np.isnan(e.pixels).any() and np.isfinite(e.pixels).any()  # NaN = off-image
    assert 0 < m.catalog["off_image_fraction"][1] < 1
    assert np.isnan(e.pixels).mean() == pytest.approx(m.catalog["off_image_fraction"][1])
    assert m.catalog["off_image_fraction"][2] == 1.0 and m.catalog["mag"][0] == 20.5
    with pytest.raises(OffImage, match=r"mosaic\.fits \(object off\): .*entirely off"):
        m.cutout(2)
    m.close()


def test_mosaic_without_wcs(tmp_path):
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(tmp_path / "plain.fits")
    (tmp_path / "s.csv").write_text("object_id,ra,dec\na,1,2\n")
    with pytest.raises(CalibrationError, match=r"plain\.fits.*no celestial WCS"):
        Mosaic(tmp_path / "plain.fits", tmp_path / "s.csv", size_px=8, bands=("r",))
