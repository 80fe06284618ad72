"""`skysift encode` under torchrun: two ranks on the CPU encode every object exactly once, and a
rank SIGKILLed mid-run costs a re-run exactly that rank's unfinished shards.

The ranks are real processes started by `python -m torch.distributed.run --standalone
--nproc_per_node=2` (the c10d rendezvous the Slurm recipe in docs/scale.md uses, on a free local
port). Encoding needs no collective: each rank reads RANK / WORLD_SIZE and takes shards k with
k mod world == rank, so no process group (gloo or nccl) is created. Each rank runs the real CLI
through a small probe (PROBE below) that logs every shard write with the writing rank, which is
how "no shard is written twice or by two ranks" is checked, and can arm the project's crash point
(`SKYSIFT_TEST_CRASH_AT`, indexer/artifacts.py) in one rank only.

The encoder is untrained (random weights, tiny backbone): exactly-once and resume are about which
rows land where, and any fixed weights show a misplaced row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoder.card import ModelCard
from encoder.preprocess import PreprocessConfig
from indexer.encode import encode_survey, gather_embeddings, n_shards, shard_paths
from survey.native import NativeSurvey

ROOT = Path(__file__).resolve().parents[2]
SHARD = 30  # 240 objects -> 8 shards: rank 0 owns 0, 2, 4, 6 and rank 1 owns 1, 3, 5, 7
WORLD = 2

# Runs `skysift <argv>` as one torchrun rank. Every shard write appends {"rank", "shard"} to
# PROBE_LOG after the shard's .done marker is written, and a finished encode appends
# {"rank", "finished"}. In rank PROBE_CRASH_RANK, SKYSIFT_TEST_CRASH_AT is armed with
# PROBE_CRASH_AT, and the rank writes no shard until every other rank has finished, so that
# exactly one rank dies while the others have done all their work (torchrun stops the surviving
# ranks of a group when one dies; the docs say what a re-run does then).
PROBE = r'''
import json, os, sys, time
import indexer.encode as enc
from skysift.cli import main

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
log = os.environ["PROBE_LOG"]
crash = int(os.environ.get("PROBE_CRASH_RANK", "-1")) == rank


def note(**kw):
    with open(log, "a") as f:  # one short O_APPEND write per line: lines of two ranks never interleave
        f.write(json.dumps({"rank": rank, **kw}) + "\n")


def others_finished():
    with open(log) as f:
        return len({json.loads(x)["rank"] for x in f if "finished" in x} - {rank}) == world - 1


write_shard, encode_survey = enc._write_shard, enc.encode_survey


def probed_write(job, k, *args, **kw):
    if crash:
        os.environ["SKYSIFT_TEST_CRASH_AT"] = os.environ["PROBE_CRASH_AT"]
        deadline = time.monotonic() + 150
        while not others_finished() and time.monotonic() < deadline:
            time.sleep(0.05)
    write_shard(job, k, *args, **kw)
    note(shard=k)


def probed_encode(*args, **kw):
    done = encode_survey(*args, **kw)
    note(finished=done)
    return done


enc._write_shard, enc.encode_survey = probed_write, probed_encode
sys.argv = ["skysift", *sys.argv[1:]]
main()
'''


@pytest.fixture(scope="module")
def untrained_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from encoder.weights import build_encoder, save_encoder

    torch.manual_seed(0)
    pre = PreprocessConfig(bands=("g", "r", "z"), pixel_scale_arcsec=0.262, input_size_px=32, band_scale=(0.01,) * 3)
    card = ModelCard(backbone="resnet18", backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8},
                     embedding_dim=64, projection_dim=16, projection_hidden=32, preprocess=pre,
                     produced_by="tests/indexer/test_encode_ranks.py (untrained)")
    out = tmp_path_factory.mktemp("untrained") / "encoder"
    save_encoder(build_encoder(card).eval(), card, out)
    return out


@pytest.fixture(scope="module")
def single_process(tiny_survey: Path, untrained_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The same job encoded by one process (rank 0 of 1)."""
    job = tmp_path_factory.mktemp("single")
    encode_survey(tiny_survey, untrained_encoder, job, shard_size=SHARD, batch_size=SHARD)
    return gather_embeddings(job).astype(np.float32)


@pytest.fixture(scope="module")
def clean_run(tiny_survey: Path, untrained_encoder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted two-rank run; returns its folder (artifacts/, writes.jsonl)."""
    out = tmp_path_factory.mktemp("clean")
    run = torchrun(tiny_survey, untrained_encoder, out / "artifacts", out / "writes.jsonl")
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def torchrun(survey: Path, encoder: Path, artifacts: Path, log: Path,
             **probe_env: str) -> subprocess.CompletedProcess[str]:
    probe = log.with_name("probe.py")
    probe.write_text(PROBE)
    env = {**os.environ, "PROBE_LOG": str(log), "OMP_NUM_THREADS": "1", **probe_env}
    env.pop("SKYSIFT_TEST_CRASH_AT", None)
    log.touch()
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
            "--monitor-interval=0.1", str(probe),
            "encode", "--survey", str(survey), "--encoder", str(encoder), "--artifacts", str(artifacts),
            "--job", "ranks", "--shard-size", str(SHARD), "--batch-size", str(SHARD), "--device", "cpu"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def writes(log: Path) -> list[tuple[int, int]]:
    """(rank, shard) of every shard write, in order."""
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    return [(x["rank"], x["shard"]) for x in lines if "shard" in x]


def finished_ranks(log: Path) -> set[int]:
    return {json.loads(x)["rank"] for x in log.read_text().splitlines() if "finished" in x}


def times_encoded(job: Path, n: int) -> np.ndarray:
    """How many finished shards' markers cover each object row."""
    count = np.zeros(n, dtype=int)
    for marker in job.glob("emb-*.done"):
        start, stop = json.loads(marker.read_text())["rows"]
        count[start:stop] += 1
    return count


def test_two_ranks_encode_every_object_exactly_once(tiny_survey: Path, clean_run: Path,
                                                    single_process: np.ndarray) -> None:
    n = len(NativeSurvey(tiny_survey))
    k_total = n_shards(n, SHARD)
    log, job = clean_run / "writes.jsonl", clean_run / "artifacts" / "building" / "ranks"

    w = writes(log)
    assert sorted(k for _, k in w) == list(range(k_total))  # every shard written, none twice
    assert all(rank == k % WORLD for rank, k in w)  # each by the rank that owns it
    assert finished_ranks(log) == {0, 1}
    assert (times_encoded(job, n) == 1).all()  # every object in exactly one finished shard
    emb = gather_embeddings(job).astype(np.float32)
    np.testing.assert_allclose(emb, single_process, atol=2e-3)  # row for row: each object where it belongs
    assert not list(job.glob("*.partial"))


def test_a_rank_killed_mid_run_costs_a_rerun_exactly_its_unfinished_shards(
        tiny_survey: Path, untrained_encoder: Path, tmp_path: Path, clean_run: Path,
        single_process: np.ndarray) -> None:
    n = len(NativeSurvey(tiny_survey))
    k_total = n_shards(n, SHARD)
    job = tmp_path / "artifacts" / "building" / "ranks"

    # rank 1 is SIGKILLed right after its first shard's .done marker, once rank 0 has finished all of its own
    first = tmp_path / "first.jsonl"
    run = torchrun(tiny_survey, untrained_encoder, tmp_path / "artifacts", first,
                   PROBE_CRASH_RANK="1", PROBE_CRASH_AT="encode.after_shard:1")
    assert run.returncode != 0, "the killed rank should fail the torchrun group"
    assert "SIGKILL" in run.stderr, run.stderr[-2000:]  # torchrun's report names the signal
    assert finished_ranks(first) == {0}
    assert sorted(writes(first)) == [(0, 0), (0, 2), (0, 4), (0, 6)]  # rank 1 died before logging its shard 1
    marked = {k for k in range(k_total) if shard_paths(job, k)[1].exists()}
    assert marked == {0, 1, 2, 4, 6}
    before = {k: shard_paths(job, k)[0].stat().st_mtime_ns for k in marked}

    again = tmp_path / "again.jsonl"
    run = torchrun(tiny_survey, untrained_encoder, tmp_path / "artifacts", again)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(writes(again)) == [(1, 3), (1, 5), (1, 7)]  # rank 0 writes nothing, rank 1 its three left
    assert finished_ranks(again) == {0, 1}
    assert {k: shard_paths(job, k)[0].stat().st_mtime_ns for k in marked} == before  # finished shards untouched
    assert (times_encoded(job, n) == 1).all()
    resumed = gather_embeddings(job).astype(np.float32)

    # bit for bit the clean run's (same processes, threads and batches)
    np.testing.assert_array_equal(resumed, gather_embeddings(clean_run / "artifacts" / "building" / "ranks"))
    np.testing.assert_allclose(resumed, single_process, atol=2e-3)


def _settle_many(job: Path, times: int) -> str:
    from indexer.encode import _write_plan

    try:
        for i in range(times):
            _write_plan(job, {"writer": os.getpid(), "i": i})
    except OSError as e:
        return repr(e)
    return "ok"


def test_ranks_writing_the_plan_at_once_never_trip_over_each_other(tmp_path: Path) -> None:
    """Every rank writes plan.json when a job starts or its survey changed: with one shared temporary
    name, one rank's rename took the file from under the other's (FileNotFoundError), which 2 x 500
    concurrent writes here showed every time."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.starmap(_settle_many, [(tmp_path, 500)] * 2) == ["ok", "ok"]
    assert json.loads((tmp_path / "plan.json").read_text())["i"] == 499
    assert not list(tmp_path.glob("*.partial"))
