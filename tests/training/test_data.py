"""Training batches: a survey held in memory gives exactly the batches streaming it from HDF5 gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from survey.catalog import Catalog
from survey.native import shard_name, write_shard
from training.data import SurveyBatches


def two_shards(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for s, n in enumerate((7, 5)):
        images = rng.normal(0, 1, (n, 2, 12, 12)).astype(np.float32)
        images[0, 1, 3, 3] = np.nan  # a masked pixel: filled with 0 on both paths
        cat = Catalog({"object_id": np.array([f"s{s}-{i}" for i in range(n)], dtype=object),
                       "ra": rng.uniform(0, 1, n), "dec": rng.uniform(0, 1, n)})
        write_shard(root / shard_name(s), images, cat, ("a", "b"), 0.5, "unit")
    return root


def test_memory_and_streaming_give_the_same_batches(tmp_path: Path) -> None:
    root = two_shards(tmp_path)
    streamed = SurveyBatches(root, memory_limit_bytes=0)
    held = SurveyBatches(root, memory_limit_bytes=1 << 20)
    assert streamed.cached is None
    assert held.cached is not None and held.cached.shape == (12, 2, 12, 12)
    for rows in ([3, 9, 0], [11, 7, 5, 6], list(range(12))):
        a, b = streamed[rows], held[rows]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
        assert not torch.isnan(b["images"]).any()
        assert b["noise"].shape == (len(rows), 2) and (b["noise"] > 0.5).all()


def test_a_survey_larger_than_the_limit_is_streamed(tmp_path: Path) -> None:
    root = two_shards(tmp_path)
    need = 12 * 2 * 12 * 12 * 4
    assert SurveyBatches(root, memory_limit_bytes=need - 1).cached is None
    assert SurveyBatches(root, memory_limit_bytes=need).cached is not None
