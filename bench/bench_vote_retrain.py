"""How long a ranking takes to learn from a vote: what GET /rankings/lenses?learn=true runs once per
new vote (`indexer.lens_learning.LensLearner.scores`, then the top of the ranking with
`indexer.scores.top_rows`), on N unit float16 embeddings read from a memory-mapped .npy as the
service holds them, with the version's float32 copy and kept similarities as the service keeps them.

    nice -n 15 .venv/bin/python bench/bench_vote_retrain.py --n 1000000 --dim 256

Timed in one run: the per-version work done once (the float32 copy, the similarity to the known
lenses), `--repeats` retrains each after one more "lens" vote (the costlier label: it adds a column
to the similarity pass) starting from `--votes` votes (with `--features` radial-profile columns, the
MLP path of a version built with them; 0, the linear path of one without), the ranking rebuilt by a new learner on the
float32 copy (an until_vote ranking no longer kept), the same with the float16 map read as it is (a
version too large for the copy: DENSE_MAX_BYTES in app/routes/rankings.py), the score a build
computes, and one similarity pass. The run fails unless the last retrain equals,
bit for bit, the same ranking rebuilt by a fresh learner (reproducible from version + votes).

Writes bench/results/vote_retrain_n<N>.json (or --out). Issue #15's target: < 2 s at 10^6 objects on
the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import os
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
    ap.add_argument("--votes", type=int, default=150, help="lens + not_lens votes before the timed ones (half each)")
    ap.add_argument("--repeats", type=int, default=16, help="timed retrains, each after one more lens vote "
                                                           "(16 includes one that completes a kept chunk)")
    ap.add_argument("--features", type=int, default=72, help="radial-profile columns per object, as a 3-band "
                    "version holds (indexer.profiles); 0: a version without them (the linear path)")
    ap.add_argument("--page", type=int, default=50, help="rows of the ranking's first page")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from indexer.lens_learning import LensLearner
    from indexer.scores import lens_scores, seed_similarity, top_rows

    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.npy"
        emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(a.n, a.dim))
        for lo in range(0, a.n, 1 << 17):
            block = rng.normal(size=(min(1 << 17, a.n - lo), a.dim)).astype(np.float32)
            emb[lo:lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        emb.flush()
        del emb
        emb = np.load(path, mmap_mode="r")
        feat = None
        if a.features:
            fpath = Path(tmp) / "lens_features.npy"
            f16 = np.lib.format.open_memmap(fpath, mode="w+", dtype=np.float16, shape=(a.n, a.features))
            for lo in range(0, a.n, 1 << 17):
                f16[lo:lo + (1 << 17)] = rng.normal(size=(min(1 << 17, a.n - lo), a.features)).astype(np.float16)
            f16.flush()
            del f16
            feat = np.load(fpath, mmap_mode="r")
        rows = rng.choice(a.n, a.seeds + a.votes + a.repeats, replace=False)
        seeds = rows[:a.seeds]
        pos = list(rows[a.seeds:a.seeds + a.votes // 2])
        neg = list(rows[a.seeds + a.votes // 2:a.seeds + a.votes])
        more = list(rows[a.seeds + a.votes:])
        known = np.zeros(a.n, bool)
        known[seeds] = True
        timings: dict[str, list[float]] = {"learned_from_votes": [], "learned_streaming_nothing_kept": [],
                                           "built_score": [], "seed_similarity": []}

        def retrain(learner: LensLearner) -> tuple[np.ndarray, np.ndarray]:
            scores = learner.scores(pos, neg)
            return scores, top_rows(scores, np.isfinite(scores) & ~known, a.page)

        t0 = time.perf_counter()
        dense = np.asarray(emb, dtype=np.float32)
        per_version = {"float32_copy": time.perf_counter() - t0}
        prior = lens_scores(emb, seeds) if feat is not None else None  # the version's built score, blended in
        learner = LensLearner(dense, seeds, features=feat, prior=prior)
        t0 = time.perf_counter()
        learner.known_similarity()
        per_version["known_similarity"] = time.perf_counter() - t0
        if feat is not None:
            t0 = time.perf_counter()
            learner.inputs()
            per_version["mlp_inputs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        retrain(learner)  # warm-up, dropped: builds the kept chunks of the votes cast before
        per_version["first_retrain"] = time.perf_counter() - t0
        for extra in more:
            pos.append(extra)
            t0 = time.perf_counter()
            scores, top = retrain(learner)
            timings["learned_from_votes"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        # nothing kept: rebuilt from version + votes
        again, top_again = retrain(LensLearner(dense, seeds, features=feat, prior=prior))
        per_version["rebuilt_nothing_kept_but_the_float32_copy"] = time.perf_counter() - t0
        if not (np.array_equal(scores, again) and np.array_equal(top, top_again)):
            raise SystemExit("a learned ranking rebuilt with nothing kept differs from the one served")
        for _ in range(min(a.repeats, 3)):
            t0 = time.perf_counter()
            retrain(LensLearner(emb, seeds, features=feat, prior=prior))
            timings["learned_streaming_nothing_kept"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            lens_scores(emb, seeds)
            timings["built_score"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            seed_similarity(emb, np.concatenate([seeds, pos]))
            timings["seed_similarity"].append(time.perf_counter() - t0)
    summary = {k: median_min_max(v) for k, v in timings.items()}
    result = {
        "benchmark": "vote_retrain", "date": utc_now_iso(), "git_sha": git_sha(short=True), "command": command_line(),
        "machine": host_machine(), "settings": vars(a) | {"out": str(a.out) if a.out else None},
        "load_average_1_5_15": {"before": [round(v, 2) for v in load_before],
                                "after": [round(v, 2) for v in os.getloadavg()]},
        "nice": os.nice(0),
        "seconds": summary,
        "seconds_per_version_once": per_version,
        "retrain_seconds_each": [round(t, 4) for t in timings["learned_from_votes"]],
        "rebuilt_equal": True,
        "ratio_learned_to_seed_similarity": summary["learned_from_votes"]["median"]
        / summary["seed_similarity"]["median"],
    }
    path_out = a.out or RESULTS_DIR / f"vote_retrain_n{a.n}.json"
    write_json(path_out, result)
    log(f"retrain after a vote at n={a.n} ({a.seeds} seeds, {a.votes}+ votes): median "
        f"{summary['learned_from_votes']['median']:.2f} s, max {summary['learned_from_votes']['max']:.2f} s "
        f"(nothing kept, float16 map: {summary['learned_streaming_nothing_kept']['median']:.2f} s; built score "
        f"{summary['built_score']['median']:.2f} s; per version once: copy {per_version['float32_copy']:.2f} s, "
        f"MLP inputs {per_version.get('mlp_inputs', 0.0):.2f} s, "
        f"known-lens similarity {per_version['known_similarity']:.2f} s); wrote {path_out}")


if __name__ == "__main__":
    main()
