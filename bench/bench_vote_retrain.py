"""How long a ranking takes to learn from votes: the lens score refitted from known lenses plus voted
positives and negatives (`indexer.scores.lens_scores`, what GET /rankings/lenses?learn=true runs once
per new vote), on N float16 embeddings read from a memory-mapped .npy as the service holds them,
next to the parts it is made of (the fit alone, one pass of scoring the survey) in the same run.

    .venv/bin/python bench/bench_vote_retrain.py --n 1000000 --dim 256

Writes bench/results/vote_retrain_n<N>.json (or --out). Issue #15's target: < 2 s at 10^6 objects on
the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, command_line, git_sha, host_machine, log, median_min_max, utc_now_iso, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=20, help="known lenses")
    ap.add_argument("--votes", type=int, default=150, help="lens + not_lens votes (half each)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from indexer.scores import lens_scores, seed_similarity

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.npy"
        emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(a.n, a.dim))
        for lo in range(0, a.n, 1 << 17):
            block = rng.normal(size=(min(1 << 17, a.n - lo), a.dim)).astype(np.float32)
            emb[lo:lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        emb.flush()
        del emb
        emb = np.load(path, mmap_mode="r")
        rows = rng.choice(a.n, a.seeds + a.votes, replace=False)
        seeds, pos, neg = rows[:a.seeds], rows[a.seeds:a.seeds + a.votes // 2], rows[a.seeds + a.votes // 2:]
        timings: dict[str, list[float]] = {"built_score": [], "learned_from_votes": [], "seed_similarity": []}
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            lens_scores(emb, seeds)
            timings["built_score"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lens_scores(emb, np.concatenate([seeds, pos]), negative_rows=neg)
            timings["learned_from_votes"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            seed_similarity(emb, np.concatenate([seeds, pos]))
            timings["seed_similarity"].append(time.perf_counter() - t0)
    summary = {k: median_min_max(v) for k, v in timings.items()}
    result = {
        "benchmark": "vote_retrain", "date": utc_now_iso(), "git_sha": git_sha(short=True), "command": command_line(),
        "machine": host_machine(), "settings": vars(a) | {"out": str(a.out) if a.out else None},
        "seconds": summary,
        "ratio_learned_to_seed_similarity": summary["learned_from_votes"]["median"]
        / summary["seed_similarity"]["median"],
    }
    path_out = a.out or RESULTS_DIR / f"vote_retrain_n{a.n}.json"
    write_json(path_out, result)
    log(f"learned from {a.votes} votes + {a.seeds} seeds at n={a.n}: "
        f"{summary['learned_from_votes']['median']:.2f} s (built score {summary['built_score']['median']:.2f} s, "
        f"one similarity pass {summary['seed_similarity']['median']:.2f} s); wrote {path_out}")


if __name__ == "__main__":
    main()
