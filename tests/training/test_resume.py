"""Resuming: a run stopped or SIGKILLed and resumed reaches the same weights, queue, optimiser
state and generators, bit for bit, as a run that was never interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training.loop import CHECKPOINT, METRICS, train
from training.settings import TrainSettings

TOTAL = 9  # 240 objects / batch 32 = 7 steps per epoch: the runs cross an epoch boundary
CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from training.loop import train
from training.settings import TrainSettings
s = TrainSettings.model_validate_json(sys.argv[1])
flag, block_at = sys.argv[2], int(sys.argv[3])
def on_step(rec):
    if rec.get("step") == block_at and "loss" in rec:  # step done, its checkpoint (if due) not yet written
        open(flag, "w").close()
        time.sleep(600)
train(s, on_step=on_step)
"""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_moco.py; the SIGKILL child uses one thread too, so results match
    yield
    torch.set_num_threads(before)


def settings(survey: Path, out: Path, **kw) -> TrainSettings:
    base = dict(survey=survey, out_dir=out, epochs=2, batch_size=32, queue_size=128,
                backbone_kwargs={"channels": [8, 16, 32, 64], "stem_width": 8}, proj_hidden=64, proj_dim=32,
                workers=0, monitor_size=0, device="cpu", log_every=1, seed=3)
    return TrainSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def reference(tiny_survey: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train(settings(tiny_survey, out, max_steps=TOTAL))
    return out


def load(run: Path) -> dict:
    return torch.load(run / CHECKPOINT, weights_only=True)


def losses(run: Path) -> list[tuple[int, float]]:
    recs = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if "loss" in r]


def assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load(a), load(b)
    assert ca["step"] == cb["step"] == TOTAL
    assert ca["model"].keys() == cb["model"].keys()
    assert any(k.startswith("encoder_k.") for k in ca["model"]) and "queue" in ca["model"]
    different = [k for k in ca["model"] if not torch.equal(ca["model"][k], cb["model"][k])]
    assert not different, f"weights differ from the uninterrupted run: {different[:5]}"
    assert int(cb["model"]["queue_ptr"]) == int(ca["model"]["queue_ptr"]) == TOTAL * 32 % 128
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    for ra, rb in zip(ca["rng"], cb["rng"], strict=True):
        assert all(torch.equal(ra[key], rb[key]) for key in ra)
    assert losses(a) == losses(b)  # each step logged once, with the same loss


@pytest.mark.parametrize("stop_at", [4, 7])  # 7 = the epoch boundary: resume starts epoch 1 with skip 0
def test_stop_then_resume_matches_uninterrupted(tiny_survey: Path, reference: Path, tmp_path: Path, stop_at: int):
    train(settings(tiny_survey, tmp_path, max_steps=stop_at))
    assert load(tmp_path)["step"] == stop_at
    train(settings(tiny_survey, tmp_path, max_steps=TOTAL, resume=True))
    assert_same_run(reference, tmp_path)


@pytest.mark.parametrize(("checkpoint_every", "last_checkpoint"), [(5, 5), (3, 3)])
def test_sigkill_between_checkpoints_then_resume_matches(tiny_survey: Path, reference: Path, tmp_path: Path,
                                                         checkpoint_every: int, last_checkpoint: int):
    """The child is killed with SIGKILL while step 6 is done but not checkpointed. With
    checkpoint_every 5 the resume starts at 5; with 3 it starts at 3 and replays steps 4-6.
    Both must land on the uninterrupted run's weights: nothing but time is lost."""
    s = settings(tiny_survey, tmp_path, max_steps=TOTAL, checkpoint_every=checkpoint_every)
    flag = tmp_path / "blocked"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, s.model_dump_json(), str(flag), "6"], env=env)
    try:
        deadline = time.monotonic() + 180
        while not flag.exists():
            assert child.poll() is None, "training child exited before the kill"
            assert time.monotonic() < deadline, "training child never reached step 6"
            time.sleep(0.2)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert load(tmp_path)["step"] == last_checkpoint
    assert max(step for step, _ in losses(tmp_path)) == 6  # logged past the checkpoint before dying
    train(settings(tiny_survey, tmp_path, max_steps=TOTAL, checkpoint_every=checkpoint_every, resume=True))
    assert_same_run(reference, tmp_path)


def test_resume_refuses_other_settings(tiny_survey: Path, reference: Path, tmp_path: Path):
    from training.errors import ResumeMismatch

    shutil.copy(reference / CHECKPOINT, tmp_path / CHECKPOINT)
    with pytest.raises(ResumeMismatch, match="batch_size 32 -> 16"):
        train(settings(tiny_survey, tmp_path, max_steps=TOTAL + 1, batch_size=16, resume=True))


def test_resume_without_checkpoint_starts_fresh_and_fresh_run_truncates_metrics(tiny_survey: Path, tmp_path: Path):
    (tmp_path / METRICS).write_text('{"step": 99, "loss": 1.0}\n')
    train(settings(tiny_survey, tmp_path, max_steps=2, resume=True))
    assert [step for step, _ in losses(tmp_path)] == [1, 2]
    assert load(tmp_path)["step"] == 2


def test_a_checkpoint_of_the_format_before_per_rank_generators_is_refused(tiny_survey: Path, tmp_path: Path):
    """skysift before 0.1.0 saved one process's generators at the top level: no longer resumable."""
    from training.errors import ResumeMismatch

    train(settings(tiny_survey, tmp_path, max_steps=2))
    ck = load(tmp_path)
    rng = ck.pop("rng")[0]
    for key in ("fingerprints", "world_size", "n_objects", "loss"):
        ck.pop(key)
    ck.update(aug_gen=rng["aug_gen"], shuffle_gen=rng["shuffle_gen"], torch_rng=rng["torch"])
    torch.save(ck, tmp_path / CHECKPOINT)
    with pytest.raises(ResumeMismatch, match=r"older format \(no rng, world_size, n_objects, loss\)"):
        train(settings(tiny_survey, tmp_path, max_steps=4, resume=True))
