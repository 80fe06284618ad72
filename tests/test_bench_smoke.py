"""Every benchmark in bench/ runs end to end at a tiny size and writes a JSON whose measurements are
not zero, so a benchmark that hangs, crashes or measures nothing fails the suite (STYLE.md §8, §11).

Each run is the script as an operator starts it (`python bench/<script>.py ...`), in a fresh
process with a time limit, writing its JSON into the test's tmp folder, never bench/results/.
The sizes are the smallest that still exercise every phase of the script; the numbers mean
nothing at that size, only that they were measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))  # the scripts import their helpers as `from _common import ...`


@dataclass
class Smoke:
    script: str
    args: Callable[[Path], list[str]]  # tmp folder -> arguments (the JSON goes to tmp/out.json)
    check: Callable[[dict[str, Any], Path], None]  # the JSON and the tmp folder: non-zero measurements
    timeout_s: float = 60.0
    env: dict[str, str] = field(default_factory=dict)


def positive(*values: Any) -> None:
    for v in values:
        assert isinstance(v, int | float) and v == v and v > 0, values


def check_service_load(res: dict[str, Any], tmp: Path) -> None:
    m = res["metrics"]
    positive(m["requests_per_s"], m["lone_p50_ms"], m["loaded_p50_ms"], m["bare_search_p50_ms"])
    assert m["errors"] == 0
    phases = res["phases"]["1 worker"]
    answered = sum(p["requests"] for p in phases["latency"] + phases["throughput"])
    positive(answered)
    # the access log is on and went to a file: more than a pipe's 64 KB of it, and the run finished
    assert res["settings"]["access_log"].startswith("on")
    log = Path(phases["server_log"])
    assert phases["access_log_lines"] >= answered and log.stat().st_size > 64 * 1024


SMOKES = [
    Smoke("bench_service_load.py",
          lambda tmp: ["--n", "2000", "--factory", "HNSW32", "--workers", "1", "--repeats", "1", "--duration", "4",
                       "--warmup", "700", "--latency-requests", "100", "--requests", "400",
                       "--search-queries", "200", "--workdir", str(tmp / "work"), "--out", str(tmp / "out.json")],
          check_service_load, timeout_s=90),
]


@pytest.mark.parametrize("smoke", SMOKES, ids=[s.script for s in SMOKES])
def test_benchmark_runs_at_tiny_size_and_measures_something(smoke: Smoke, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **smoke.env}
    t0, wall0 = time.monotonic(), time.time()
    try:
        proc = subprocess.run([sys.executable, str(BENCH / smoke.script), *smoke.args(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=smoke.timeout_s)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{smoke.script} still running after {smoke.timeout_s:g} s (hung?); stderr ends:\n"
                    f"{(e.stderr or b'')[-3000:]!r}")
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"{smoke.script} exited {proc.returncode} after {took:.0f} s:\n{proc.stderr[-3000:]}"
    out = tmp_path / "out.json"
    assert out.exists(), f"{smoke.script} wrote no JSON:\n{proc.stderr[-2000:]}"
    res = json.loads(out.read_text())
    assert res.get("benchmark"), res.keys()
    smoke.check(res, tmp_path)
    assert not [p for p in (BENCH / "results").glob("*") if p.stat().st_mtime >= wall0], \
        f"{smoke.script} wrote into bench/results/"


def test_service_load_stops_when_a_phase_measured_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """0 requests (a server that never answered) or only failed ones: exit 1 with one line, no JSON."""
    import bench_service_load as b

    ok = {"requests": 40, "errors": 0}
    b.require_phases_measured({"workers": 1, "latency": [ok], "throughput": [ok]})
    for bad in ({"requests": 0, "errors": 0}, {"requests": 40, "errors": 40}):
        with pytest.raises(SystemExit) as e:
            b.require_phases_measured({"workers": 1, "latency": [ok], "throughput": [bad]})
        assert str(e.value).startswith("service_load: error: nothing measured (1 worker(s), throughput repeat 0")
        assert "no results written" in str(e.value)
