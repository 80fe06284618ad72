"""The throughput benchmark's CUDA code path (bf16 autocast, channels_last) at toy size on the CPU.
Slow (bf16 is emulated on most CPUs, ~2 min on two shared cores): run with `pytest -m slow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_train_gpu_path_runs_on_cpu(tiny_survey: Path, tmp_path: Path):
    out = tmp_path / "train_toy.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_train.py"), "--device", "cpu", "--gpu-path",
           "--survey", str(tiny_survey), "--batch-size", "16", "--queue-size", "64", "--workers", "1",
           "--backbone-kwargs", json.dumps({"channels": [8, 16, 32, 64], "stem_width": 8}),
           "--steps", "1", "--warmup", "1", "--repeats", "1", "--out", str(out)]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["settings"]["precision"] == "bf16" and res["settings"]["channels_last"]
    for key in ("bare_images_per_s", "pipeline_images_per_s", "pipeline_over_bare", "stage_augment_images_per_s"):
        assert res["metrics"][key]["median"] > 0
