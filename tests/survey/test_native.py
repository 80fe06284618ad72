"""The native shard layout: what write_shard writes, NativeSurvey reads back, unchanged."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from survey.catalog import Catalog
from survey.errors import SurveyError, UnreadableCutout
from survey.native import NativeSurvey, shard_name, write_shard

BANDS = ("g", "r", "z")


def _shard(n: int, start: int, seed: int) -> tuple[np.ndarray, Catalog]:
    """(N, 3, 8, 8) images whose pixel [0, 0, 0] is the global row number, and a catalog with
    string, bool, int and float columns (one string left empty, as artifact_kind is)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, len(BANDS), 8, 8)).astype(np.float32)
    rows = np.arange(start, start + n)
    images[:, 0, 0, 0] = rows
    cat = Catalog({
        "object_id": np.array([f"obj-{i:04d}" for i in rows], dtype=object),
        "ra": rng.uniform(0, 360, n),
        "dec": rng.uniform(-90, 90, n),
        "class": np.array(["spiral", "star", "lens", "édge_on"] * n, dtype=object)[:n],  # non-ASCII survives
        "artifact_kind": np.array(["", "ghost"] * n, dtype=object)[:n],
        "is_lens": rows % 3 == 0,
        "n_knots": rows.astype(np.int32),
        "z": rng.uniform(0, 1, n).astype(np.float32),
    })
    return images, cat


@pytest.fixture()
def two_shards(tmp_path: Path) -> tuple[Path, np.ndarray, Catalog]:
    a_img, a_cat = _shard(5, 0, seed=1)
    b_img, b_cat = _shard(4, 5, seed=2)
    write_shard(tmp_path / shard_name(0), a_img, a_cat, BANDS, 0.262, "unit")
    write_shard(tmp_path / shard_name(1), b_img, b_cat, BANDS, 0.262, "unit")
    return tmp_path, np.concatenate([a_img, b_img]), Catalog.concat([a_cat, b_cat])


def test_round_trip_pixels_columns_and_attributes(two_shards):
    root, images, cat = two_shards
    s = NativeSurvey(root)
    assert len(s) == 9
    assert s.bands == BANDS and s.pixel_scale_arcsec == 0.262 and s.survey_name == "unit"
    assert s.image_shape == (3, 8, 8)
    np.testing.assert_array_equal(s.images(np.arange(9)), images)
    assert s.catalog.names == cat.names  # column order is kept (track_order)
    for name in cat.names:
        got, want = s.catalog[name], cat[name]
        if want.dtype.kind == "O":
            assert got.dtype.kind == "O" and got.tolist() == want.tolist(), name
        else:
            assert got.dtype == want.dtype, name  # bool stays bool, int32 stays int32, float32 stays float32
            np.testing.assert_array_equal(got, want)
    assert s.catalog["artifact_kind"][0] == "" and s.catalog["class"][3] == "édge_on"
    c = s.cutout(6)
    assert c.object_id == "obj-0006" and c.bands == BANDS
    np.testing.assert_array_equal(c.pixels, images[6])
    s.close()


def test_single_file_and_batches(two_shards):
    root, images, _ = two_shards
    one = NativeSurvey(root / shard_name(1))
    assert len(one) == 4
    np.testing.assert_array_equal(one.images([0, 3]), images[[5, 8]])
    s = NativeSurvey(root)
    got = list(s.iter_batches(4))
    assert [r.tolist() for r, _ in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    np.testing.assert_array_equal(np.concatenate([b for _, b in got]), images)


def test_images_keep_the_requested_order_across_shards_with_duplicates(two_shards):
    root, images, _ = two_shards
    s = NativeSurvey(root)
    rows = np.array([8, 2, 2, 5, 0, 8, 7, 2])
    out = s.images(rows)
    assert out.shape == (8, 3, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, 0, 0], rows)  # pixel [0,0,0] holds the row number
    np.testing.assert_array_equal(out, images[rows])
    assert s.images([]).shape == (0, 3, 8, 8)
    with pytest.raises(IndexError):
        s.images([9])
    with pytest.raises(IndexError):
        s.images([-1])


def test_partial_shard_is_ignored(two_shards):
    root, _, _ = two_shards
    # A crash mid-write leaves `shard-00002.h5.partial`; the reader must not count it.
    img, cat = _shard(3, 100, seed=3)
    write_shard(root / shard_name(2), img, cat, BANDS, 0.262, "unit")
    (root / shard_name(2)).rename(root / (shard_name(2) + ".partial"))
    s = NativeSurvey(root)
    assert len(s) == 9
    assert [p.name for p in s.paths] == [shard_name(0), shard_name(1)]


def test_write_is_atomic_and_leaves_no_partial(tmp_path: Path):
    img, cat = _shard(2, 0, seed=0)
    path = write_shard(tmp_path / shard_name(0), img, cat, BANDS, 0.262, "unit")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_identical_inputs_give_identical_bytes(tmp_path: Path):
    img, cat = _shard(3, 0, seed=0)
    a = write_shard(tmp_path / "a" / shard_name(0), img, cat, BANDS, 0.262, "unit")
    b = write_shard(tmp_path / "b" / shard_name(0), img, cat, BANDS, 0.262, "unit")
    assert a.read_bytes() == b.read_bytes()


def test_images_are_chunked_one_object_per_chunk_and_compressed(two_shards):
    root, _, _ = two_shards
    with h5py.File(root / shard_name(0), "r") as f:
        assert f["images"].chunks == (1, 3, 8, 8)
        assert f["images"].compression == "lzf"


def test_corrupt_shard_names_the_file(two_shards):
    root, _, _ = two_shards
    bad = root / shard_name(1)
    bad.write_bytes(bad.read_bytes()[:200])  # truncated: the superblock survives, nothing else
    with pytest.raises(UnreadableCutout) as e:
        NativeSurvey(root)
    assert str(bad) in str(e.value) and e.value.source == str(bad)

    (root / shard_name(1)).write_bytes(b"not an hdf5 file at all")
    with pytest.raises(UnreadableCutout, match=shard_name(1)):
        NativeSurvey(root)


def test_shard_without_images_names_the_file(tmp_path: Path):
    with h5py.File(tmp_path / shard_name(0), "w") as f:
        f.attrs.update({"bands": "g,r,z", "pixel_scale_arcsec": 0.262, "survey_name": "x"})
        f["object_id"] = np.array([b"a"])
    with pytest.raises(UnreadableCutout, match=shard_name(0)):
        NativeSurvey(tmp_path)


def test_mismatched_shards_and_empty_folder_are_refused(tmp_path: Path):
    with pytest.raises(SurveyError, match="no survey shards"):
        NativeSurvey(tmp_path)
    img, cat = _shard(2, 0, seed=0)
    write_shard(tmp_path / shard_name(0), img, cat, BANDS, 0.262, "unit")
    img2, cat2 = _shard(2, 2, seed=1)
    write_shard(tmp_path / shard_name(1), img2, cat2, BANDS, 0.5, "unit")
    with pytest.raises(SurveyError, match=shard_name(1)):
        NativeSurvey(tmp_path)


def test_write_refuses_wrong_shapes(tmp_path: Path):
    img, cat = _shard(3, 0, seed=0)
    with pytest.raises(SurveyError, match="images must be"):
        write_shard(tmp_path / shard_name(0), img[:, :2], cat, BANDS, 0.262, "unit")
    with pytest.raises(SurveyError, match="catalog rows"):
        write_shard(tmp_path / shard_name(0), img[:2], cat, BANDS, 0.262, "unit")
    assert not list(tmp_path.iterdir())


def test_read_range_spans_shards_and_matches_row_reads(two_shards):
    root, images, _ = two_shards
    s = NativeSurvey(root)
    for start, stop in ((0, 9), (3, 7), (5, 5), (4, 6), (8, 9)):
        np.testing.assert_array_equal(s.read_range(start, stop), images[start:stop])
        np.testing.assert_array_equal(s.read_range(start, stop), s.images(np.arange(start, stop)))
    for bad in ((-1, 2), (3, 2), (0, 10)):
        with pytest.raises(IndexError):
            s.read_range(*bad)


def test_read_range_crops_the_centre_as_the_encoder_does(two_shards):
    import torch

    from encoder.preprocess import center_crop

    root, images, _ = two_shards
    s = NativeSurvey(root)
    h, w = images.shape[-2:]
    for size in (h, h - 1, h - 2, 3, 1):  # odd and even margins
        want = center_crop(torch.from_numpy(images[2:7]), size).numpy()
        got = s.read_range(2, 7, crop_px=size)  # rows 2..6 span both shards
        assert got.shape == (5, images.shape[1], size, size) and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    for bad in (0, h + 1):
        with pytest.raises(ValueError, match="cannot crop"):
            s.read_range(0, 2, crop_px=bad)
