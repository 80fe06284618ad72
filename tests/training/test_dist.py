"""DDP on CPU (gloo): two processes launched by torchrun train the tiny model and stay in step.

Each rank fingerprints what DDP must keep identical (both encoders' parameters, the queue, its
pointer) at every checkpoint; `train` gathers the fingerprints, refuses to go on if they differ,
and stores them in the checkpoint, where this test compares them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from training.dist import shuffled_key_forward

# Heavier imports (timm, h5py) live inside the torchrun test: the spawned workers below import
# this module, and each second of import is paid twice on two shared cores.

BATCH, STEPS, WORLD = 16, 2, 2
# 128, not 64: after 2 steps of 2 x 16 keys a 64-slot queue wraps to pointer 0 and would show
# nothing; with 128 the pointer lands on 64 only if every rank's keys went in (one rank's: 32).
QUEUE = 128
TINY = {"channels": [8, 16, 32, 64], "stem_width": 8}


def test_torchrun_two_ranks_agree_and_fill_queue_from_both(tiny_survey: Path, tmp_path: Path):
    from encoder.model import Encoder
    from training.loop import CHECKPOINT, METRICS, sync_fingerprint
    from training.moco import MoCo

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "skysift.cli", "train", "--survey", str(tiny_survey), "--out", str(out), "--device", "cpu",
           "--batch-size", str(BATCH), "--queue-size", str(QUEUE), "--max-steps", str(STEPS), "--epochs", "1",
           "--backbone-kwargs", json.dumps(TINY), "--proj-hidden", "64", "--proj-dim", "32", "--workers", "0",
           "--monitor-size", "0", "--log-every", "1", "--checkpoint-every", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ck = torch.load(out / CHECKPOINT, weights_only=True)
    assert ck["world_size"] == WORLD and ck["step"] == STEPS
    prints = ck["fingerprints"]
    assert len(prints) == WORLD and len(set(prints)) == 1, f"ranks disagree: {prints}"
    # The fingerprint is honest: recomputing it from the saved state gives rank 0's value.
    enc = Encoder("resnet18", 3, 32, 64, True, TINY)
    moco = MoCo(enc, QUEUE, 0.99, 0.2)
    moco.load_state_dict(ck["model"])
    assert sync_fingerprint(moco) == prints[0]
    # Both ranks' keys entered the queue at every step.
    assert int(ck["model"]["queue_ptr"]) == STEPS * WORLD * BATCH % QUEUE == 64
    # Ranks draw different augmentations and shuffles (distinct generator streams).
    r0, r1 = ck["rng"]
    assert not torch.equal(r0["aug_gen"], r1["aug_gen"])
    assert not torch.equal(r0["shuffle_gen"], r1["shuffle_gen"])
    # One metrics stream (rank 0's, the loss averaged over ranks) and one exported encoder.
    steps = [json.loads(line)["step"] for line in (out / METRICS).read_text().splitlines()]
    assert steps == [1, 2]
    assert (out / "encoder" / "model.safetensors").exists()


def _shuffle_worker(rank: int, world: int, init_file: str, result_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same weights on both ranks
    # A per-row map stands in for the key encoder (in eval mode BatchNorm is per row too).
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(10 + rank))  # each rank its own rows
    keys = shuffled_key_forward(enc, x, torch.Generator().manual_seed(rank))
    err = float((keys - enc(x)).abs().max())
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps({"max_abs_err": err}))
    dist.destroy_process_group()


def test_shuffled_key_forward_across_ranks_returns_each_rank_its_own_keys(tmp_path: Path):
    """Rows travel to other ranks and back: row i of each rank's output must be the key of its x[i].
    (The generators differ on purpose: rank 0's permutation is broadcast, so they must not matter.)"""
    import torch.multiprocessing as mp

    mp.spawn(_shuffle_worker, args=(WORLD, str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    for r in range(WORLD):
        assert json.loads((tmp_path / f"rank{r}.json").read_text())["max_abs_err"] < 1e-5
