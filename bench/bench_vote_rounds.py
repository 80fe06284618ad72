"""The lens discovery loop with a simulated astronomer: start from a few known lenses, and each round
vote on the top candidates (the truth says lens / not a lens), refit the lens score from the votes
(`indexer.scores.lens_scores`, what GET /rankings/lenses?learn=true runs), and measure recall@100 of
the lenses not used as seeds. Beside it, in the same run on the same votes, the rankings a loop
without a learned model would give: the score built from the seeds alone (votes ignored) and the
maximum cosine similarity to the seeds plus every lens voted so far (similarity search by example).

    .venv/bin/python bench/bench_vote_rounds.py --artifacts artifacts --seeds 20 --rounds 3 --votes 50

The version's catalogue must hold the truth (`--truth-column class`, lenses = `--lens-value lens`),
as the simulation's does. Writes bench/results/vote_rounds_<name>.json (or --out) and prints a table.
Issue #15's target: recall@100 >= 0.9 after at most 3 rounds of 50 votes from 20 seeds, and at least
the best baseline at every round.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, command_line, git_sha, host_machine, log, require_measured, utc_now_iso, write_json


def recall_at(score: np.ndarray, truth: np.ndarray, exclude: np.ndarray, k: int) -> float:
    """Share of the lenses outside `exclude` that are in the top k of `score` (excluded rows left out)."""
    s = np.where(exclude, -np.inf, np.nan_to_num(score, nan=-np.inf))
    top = np.argsort(-s, kind="stable")[:k]
    want = truth & ~exclude
    return float(want[top].sum() / max(1, want.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, required=True, help="artifacts root of a published version")
    ap.add_argument("--truth-column", default="class")
    ap.add_argument("--lens-value", default="lens")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--votes", type=int, default=50, help="votes per round (the top unvoted candidates)")
    ap.add_argument("--k", type=int, default=100, help="recall@k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="sim")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from indexer.scores import lens_scores, seed_similarity
    from indexer.store import IndexedSurvey

    store = IndexedSurvey.open_current(a.artifacts)
    truth = np.asarray(store.catalog[a.truth_column]).astype(str) == a.lens_value
    n_lens = int(truth.sum())
    require_measured("vote_rounds", objects=len(store), lenses=n_lens, lenses_beyond_seeds=n_lens - a.seeds)
    rng = np.random.default_rng(a.seed)
    seeds = np.sort(rng.choice(np.nonzero(truth)[0], a.seeds, replace=False))
    seed_mask = np.zeros(len(store), bool)
    seed_mask[seeds] = True
    emb = store.embeddings

    built = lens_scores(emb, seeds, seed=a.seed)  # the score a version built from the seeds holds
    pos, neg = np.zeros(0, np.int64), np.zeros(0, np.int64)
    learned = built
    rounds = []
    for r in range(a.rounds + 1):
        similarity = seed_similarity(emb, np.concatenate([seeds, pos]))
        row = {"round": r, "votes": int(len(pos) + len(neg)), "lenses_voted": int(len(pos)),
               "recall": {"learned_from_votes": recall_at(learned, truth, seed_mask, a.k),
                          "seeds_only": recall_at(built, truth, seed_mask, a.k),
                          "similarity_to_found": recall_at(similarity, truth, seed_mask, a.k)}}
        rounds.append(row)
        log(f"round {r}: {row['votes']} votes ({row['lenses_voted']} lenses) recall@{a.k} "
            + ", ".join(f"{k} {v:.3f}" for k, v in row["recall"].items()))
        if r == a.rounds:
            break
        voted = np.zeros(len(store), bool)
        voted[np.concatenate([seeds, pos, neg])] = True
        order = np.argsort(-np.where(voted, -np.inf, np.nan_to_num(learned, nan=-np.inf)), kind="stable")
        batch = order[: a.votes]
        pos = np.concatenate([pos, batch[truth[batch]]])
        neg = np.concatenate([neg, batch[~truth[batch]]])
        t0 = time.perf_counter()
        learned = lens_scores(emb, np.concatenate([seeds, pos]), negative_rows=neg, seed=a.seed)
        row["refit_s"] = round(time.perf_counter() - t0, 3)

    result = {
        "benchmark": "vote_rounds", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(short=True),
        "command": command_line(), "machine": host_machine(), "version": store.version,
        "n_objects": len(store), "n_lenses": n_lens, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                                  for k, v in vars(a).items()},
        "rounds": rounds,
    }
    path = a.out or RESULTS_DIR / f"vote_rounds_{a.name}.json"
    write_json(path, result)
    names = list(rounds[0]["recall"])
    print("| round | votes (lenses) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for row in rounds:
        print(f"| {row['round']} | {row['votes']} ({row['lenses_voted']}) | "
              + " | ".join(f"{row['recall'][k]:.3f}" for k in names) + " |")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
