"""survey.readers.image_folder: PNG/JPEG files named by a catalog.csv, built with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from survey_files import truncate

from survey.errors import UnreadableCutout
from survey.readers.errors import CorruptFile, DuplicateObjectId, WrongBandCount
from survey.readers.image_folder import ImageFolder


def write_image_folder(root: Path, rows: list[tuple[str, float, float, str, str]]) -> None:
    root.mkdir(exist_ok=True)
    lines = ["object_id,ra,dec,file,z,note"]
    lines += [
        f"{oid},{ra},{dec},{file},{z},{note}"
        for oid, ra, dec, file, z, note in [(*r[:4], 0.1 * i, r[4]) for i, r in enumerate(rows)]
    ]
    (root / "catalog.csv").write_text("\n".join(lines) + "\n")


def test_image_folder_png_jpeg(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(root, [("a", 1.0, 2.0, "a.png", "x"), ("b", 3.0, 4.0, "b.jpg", "y")])
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    Image.fromarray(rgb).save(root / "a.png")
    Image.fromarray(rgb).save(root / "b.jpg", quality=95)
    folder = ImageFolder(root, pixel_scale_arcsec=0.262)
    a, b = list(folder)
    assert a.bands == ("r", "g", "b") and a.pixels.shape == (3, 24, 24)
    np.testing.assert_allclose(a.pixels[:, 0, 0], [1.0, 128 / 255, 0.0])  # R, G, B planes
    assert b.pixels.shape == (3, 24, 24) and a.pixel_scale_arcsec == 0.262
    assert (b.object_id, b.ra_deg, b.dec_deg) == ("b", 3.0, 4.0)
    assert folder.catalog["z"].dtype == np.float64 and list(folder.catalog["note"]) == ["x", "y"]
    z = ImageFolder(root, pixel_scale_arcsec=0.262, bands=("z", "r", "g")).read(0)
    assert z.bands == ("z", "r", "g")


def test_image_folder_bad_inputs(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(
        root,
        [
            ("grey", 1.0, 2.0, "g.png", ""),
            ("cut", 1.0, 2.0, "c.png", ""),
            ("gone", 1.0, 2.0, "missing.png", ""),
        ],
    )
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "g.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(root / "c.png")
    truncate(root / "c.png", 0.5)
    folder = ImageFolder(root, pixel_scale_arcsec=0.2)
    with pytest.raises(WrongBandCount, match=r"g\.png \(object grey\): 1 channel"):
        folder.read(0)
    with pytest.raises(CorruptFile, match=r"c\.png \(object cut\).*truncated"):
        folder.read(1)
    with pytest.raises(
        UnreadableCutout, match=r"missing\.png \(object gone\): image file not found"
    ):
        folder.read(2)


def test_image_folder_duplicate_ids(tmp_path):
    root = tmp_path / "imgs"
    write_image_folder(root, [("a", 1.0, 2.0, "a.png", ""), ("a", 1.0, 2.0, "b.png", "")])
    with pytest.raises(DuplicateObjectId, match=r"catalog\.csv.*'a' x2"):
        ImageFolder(root, pixel_scale_arcsec=0.2)
