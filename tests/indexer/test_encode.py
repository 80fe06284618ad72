"""Whole-survey encoding: resumable shards, the plan a resumed job must match, rank/world split,
and the reader paths (background thread, DataLoader workers) giving the same embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder.embed import embed_array
from encoder.weights import load_encoder
from indexer.encode import encode_survey, gather_embeddings, n_shards, shard_paths
from indexer.errors import ArtifactMismatch
from survey.native import NativeSurvey

SHARD = 64  # 240 objects -> 4 shards, the last one short


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def reference(tiny_survey: Path, tiny_encoder: Path) -> np.ndarray:
    """Embeddings computed the plain way, one call, no shards."""
    encoder, card = load_encoder(tiny_encoder)
    survey = NativeSurvey(tiny_survey)
    return embed_array(encoder, card, survey.images(np.arange(len(survey))), batch_size=100)


def test_one_run_covers_every_object_once(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path,
                                          reference: np.ndarray) -> None:
    done = encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, batch_size=24)
    assert done == [0, 1, 2, 3]
    emb = gather_embeddings(tmp_path)
    assert emb.dtype == np.float16 and emb.shape == reference.shape
    np.testing.assert_allclose(emb.astype(np.float32), reference, atol=2e-3)
    for k in done:
        start, stop = json.loads(shard_paths(tmp_path, k)[1].read_text())["rows"]
        assert (start, stop) == (k * SHARD, min((k + 1) * SHARD, len(reference)))


def test_killed_after_one_shard_the_rerun_skips_it(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path,
                                                    reference: np.ndarray) -> None:
    seen = []

    def die_in_shard_1(n: int) -> None:
        seen.append(n)
        if sum(seen) > SHARD:  # first batch of shard 1 has been embedded: shard 0 is on disk
            raise Stop

    with pytest.raises(Stop):
        encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, batch_size=32, on_rows=die_in_shard_1)
    assert shard_paths(tmp_path, 0)[1].exists() and not shard_paths(tmp_path, 1)[1].exists()
    with pytest.raises(ArtifactMismatch, match="1 of 4 shards|3 of 4 shards"):
        gather_embeddings(tmp_path)
    first = shard_paths(tmp_path, 0)[0].stat().st_mtime_ns
    counted = []
    assert encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, batch_size=32,
                         on_rows=counted.append) == [1, 2, 3]
    assert shard_paths(tmp_path, 0)[0].stat().st_mtime_ns == first
    assert sum(counted) == len(reference)  # progress counts the skipped shard too
    np.testing.assert_allclose(gather_embeddings(tmp_path).astype(np.float32), reference, atol=2e-3)
    assert encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD) == []  # all done


def test_a_plan_mismatch_re_encodes_saying_why(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    """Other objects, settings or weights: never reused (tests/indexer/test_encode_changes.py has the rest)."""
    encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD)
    plan = json.loads((tmp_path / "plan.json").read_text())
    (tmp_path / "plan.json").write_text(json.dumps({**plan, "catalog_sha256": "f" * 64}))
    said: list[str] = []
    assert encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, log=said.append) == [0, 1, 2, 3]
    assert len(said) == 1 and said[0].startswith("the survey's object ids changed; re-encoding all 240 objects")


def test_a_truncated_shard_is_caught_when_gathering(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD)
    npy = shard_paths(tmp_path, 2)[0]
    np.save(npy, np.load(npy)[:10])
    with pytest.raises(ArtifactMismatch, match="shard 2 covers 64 objects"):
        gather_embeddings(tmp_path)


def test_ranks_split_the_shards_exactly_once(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path,
                                            reference: np.ndarray) -> None:
    shard = 32  # 8 shards
    r0 = encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=shard, rank=0, world=2)
    with pytest.raises(ArtifactMismatch, match="not encoded yet"):
        gather_embeddings(tmp_path)
    r1 = encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=shard, rank=1, world=2)
    assert r0 == [0, 2, 4, 6] and r1 == [1, 3, 5, 7]
    assert sorted(r0 + r1) == list(range(n_shards(len(reference), shard)))
    np.testing.assert_allclose(gather_embeddings(tmp_path).astype(np.float32), reference, atol=2e-3)
    with pytest.raises(ValueError, match="rank 2 outside"):
        encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=shard, rank=2, world=2)


def test_dataloader_workers_give_the_same_embeddings(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path,
                                                     reference: np.ndarray) -> None:
    encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=100, batch_size=40, workers=1)
    np.testing.assert_allclose(gather_embeddings(tmp_path).astype(np.float32), reference, atol=2e-3)


def test_bf16_autocast_path_runs_on_cpu(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path,
                                        reference: np.ndarray) -> None:
    """The CUDA default (bf16 autocast) exercised on the CPU at tiny size: close to fp32."""
    encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, batch_size=64, precision="bf16")
    emb = gather_embeddings(tmp_path).astype(np.float32)
    cos = (emb * reference).sum(axis=1) / np.linalg.norm(emb, axis=1)
    assert cos.min() > 0.98


@pytest.mark.gpu
def test_cuda_path_matches_cpu(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path, reference: np.ndarray) -> None:
    encode_survey(tiny_survey, tiny_encoder, tmp_path, shard_size=SHARD, device="cuda", workers=2)
    emb = gather_embeddings(tmp_path).astype(np.float32)
    assert ((emb * reference).sum(axis=1) / np.linalg.norm(emb, axis=1)).min() > 0.98
