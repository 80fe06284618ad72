"""The lens discovery loop with a simulated astronomer: start from a few known lenses and, each round,
vote on a ranking's best unvoted candidates (the truth says lens / not a lens), then measure recall@k
of the lenses that were not seeds. With `--target interesting`, the anomaly side: start from an
anomaly list (`--list combined|anomaly`), vote interesting / boring (the truth: `--interesting`, e.g.
mergers and lenses, while the list also holds artifacts) and measure precision@k; the methods are then
the list re-ordered by the votes (what `learn=true` serves), the list as built, similarity to what
was voted interesting, LOF and Astronomaly's loop. Every method runs its own loop on its own votes:

- `learned_from_votes`: what GET /rankings/lenses?learn=true serves (`indexer.lens_learning.LensLearner`:
  an MLP on the version's radial profiles and the embeddings' first principal components, from the
  seeds and lens votes, not-lens votes as weighted negatives, blended with the built score (below);
  a version without profiles gets a
  logistic regression on the embeddings blended with the similarity to the positives);
- `similarity_to_found`: search by example, the max cosine similarity to the seeds and every lens
  found so far;
- `seeds_only`: the score the version was built with (from the seeds), never retrained;
- `lof`: the local outlier factor of the embeddings (an unsupervised ranking: lenses are rare);
- `astronomaly`: Lochner & Bassett (2021)'s loop, rebuilt from their paper with scikit-learn: an
  isolation forest on the embeddings' first 20 principal components, scaled to 0-5, re-scored after
  each round by a random-forest regression of the votes (lens 5, not a lens 0) damped towards the
  anomaly score far from any voted object (their NeighbourScore).

For every method the list measured is the one its astronomer holds after the round: objects voted
lens first, objects voted not a lens left out, then the method's best unvoted candidates
(`indexer.scores.with_votes`, which the learned ranking applies itself). Seeds are never counted.

    .venv/bin/python bench/bench_vote_rounds.py --artifacts artifacts --seeds 20 --rounds 5 --votes 20,50

The version's catalogue must hold the truth (`--truth-column class`, lenses = `--lens-value lens`),
as the simulation's does. Writes bench/results/vote_rounds_<name>.json (or --out) and prints a table
per votes-per-round setting. Issue #15's target: recall@100 >= 0.9 after at most 3 rounds of 50
votes from 20 seeds, and at least the best baseline at every round.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, command_line, git_sha, host_machine, log, require_measured, utc_now_iso, write_json

Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (voted lens rows, voted not-lens rows) -> score (N,)
LEARNED = "learned_from_votes"


def recall_at(score: np.ndarray, truth: np.ndarray, exclude: np.ndarray, k: int) -> float:
    """Share of the lenses outside `exclude` that are in the top k of `score` (excluded rows left out)."""
    s = np.where(exclude, -np.inf, np.nan_to_num(score, nan=-np.inf))
    top = np.argsort(-s, kind="stable")[:k]
    want = truth & ~exclude
    return float(want[top].sum() / max(1, want.sum()))


def precision_at(score: np.ndarray, truth: np.ndarray, exclude: np.ndarray, k: int) -> float:
    """Share of the top k of `score` (excluded rows left out) that are in `truth`."""
    s = np.where(exclude, -np.inf, np.nan_to_num(score, nan=-np.inf))
    top = np.argsort(-s, kind="stable")[:k]
    return float(truth[top].sum() / max(1, len(top)))


def astronomaly_ranker(emb: np.ndarray, seed: int) -> Ranker:
    """Isolation forest + NeighbourScore on the first 20 principal components (their features)."""
    from scipy.spatial import cKDTree
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest, RandomForestRegressor

    feats = PCA(n_components=min(20, emb.shape[1]), random_state=seed).fit_transform(emb)
    raw = -IsolationForest(n_estimators=200, random_state=seed).fit(feats).score_samples(feats)  # higher = odder
    anomaly = 5.0 * (raw - raw.min()) / max(raw.max() - raw.min(), 1e-12)  # 0-5, the scale votes are on

    def rank(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        labelled = np.concatenate([pos, neg])
        if not len(labelled):
            return anomaly
        y = np.concatenate([np.full(len(pos), 5.0), np.zeros(len(neg))])
        forest = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1)
        user = forest.fit(feats[labelled], y).predict(feats)
        dist = cKDTree(feats[labelled]).query(feats)[0]
        f_u = 0.1 + 0.85 * user / 5.0  # in (0, 1): the predicted relevance
        return anomaly * np.tanh(np.exp(dist / max(dist.mean(), 1e-12)) - 1.0 + np.arctanh(f_u))

    return rank


def run_loop(rank: Ranker, truth: np.ndarray, seeds: np.ndarray, seed_mask: np.ndarray, rounds: int, votes: int,
             k: int) -> list[dict[str, float | int]]:
    """Rounds 0..`rounds` of one method: recall@k of the list after each round's votes, and the votes."""
    from indexer.scores import with_votes

    pos, neg = np.zeros(0, np.int64), np.zeros(0, np.int64)
    out: list[dict[str, float | int]] = []
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        score = with_votes(rank(pos, neg), pos, neg)
        fit_s = time.perf_counter() - t0
        out.append({"round": r, "votes": int(len(pos) + len(neg)), "lenses_voted": int(len(pos)),
                    "recall": recall_at(score, truth, seed_mask, k),
                    "precision": precision_at(score, truth, seed_mask, k), "rank_s": round(fit_s, 3)})
        if r == rounds:
            break
        voted = seed_mask.copy()
        voted[np.concatenate([pos, neg])] = True
        order = np.argsort(-np.where(voted, -np.inf, np.nan_to_num(score, nan=-np.inf)), kind="stable")
        batch = order[:votes]
        pos = np.concatenate([pos, batch[truth[batch]]])
        neg = np.concatenate([neg, batch[~truth[batch]]])
    return out


def plot_curves(results: list[Path], figure: Path) -> None:
    """The curves of result JSONs this script wrote: one row per JSON (survey), one panel per number of
    votes a round, the measure (recall@k of the new lenses, or precision@k of the interesting) against
    the round for every method, the learned ranking in bold. Draws, never runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [json.loads(p.read_text()) for p in results]
    cols = max(len(d["runs"]) for d in loaded)
    fig, axes = plt.subplots(len(loaded), cols, figsize=(4.2 * cols, 3.0 * len(loaded)), squeeze=False)
    for row, d in zip(axes, loaded, strict=True):
        for ax, (votes, rounds) in zip(row, d["runs"].items(), strict=False):
            key = "recall" if "recall" in rounds[0] else "precision"
            for method in rounds[0][key]:
                learned = method == "learned_from_votes"
                ax.plot([r["round"] for r in rounds], [r[key][method] for r in rounds], marker="o", ms=3,
                        lw=2.5 if learned else 1.2, color="black" if learned else None, label=method)
            ax.set_title(f"{d['name']}: {votes} votes a round", fontsize=8)
            ax.set_xlabel("round")
            ax.set_ylabel(d.get("measure", f"{key}@100"))
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        for ax in row[len(d["runs"]):]:
            ax.axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (3.0 * len(loaded)), 1, 1))
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, help="artifacts root of a published version (what a run needs)")
    ap.add_argument("--plot", type=Path, nargs="+", metavar="JSON",
                    help="only draw the curves of these result JSONs into --figure (no run)")
    ap.add_argument("--figure", type=Path, help="the PNG --plot writes")
    ap.add_argument("--truth-column", default="class")
    ap.add_argument("--lens-value", default="lens")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--votes", default="20,50", help="votes per round (the top unvoted candidates), comma-separated")
    ap.add_argument("--k", type=int, default=100, help="recall@k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="sim")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--target", choices=("lens", "interesting"), default="lens",
                    help="lens: the lens list from --seeds known lenses; interesting: an anomaly list (--list) "
                         "re-ordered by interesting / boring votes, no seeds, the truth --interesting")
    ap.add_argument("--list", choices=("combined", "anomaly"), default="combined",
                    help="with --target interesting: the list the astronomer starts from")
    ap.add_argument("--interesting", default="merger,lens",
                    help="with --target interesting: the --truth-column values the astronomer finds interesting")
    a = ap.parse_args()
    if a.plot:
        if not a.figure:
            ap.error("--plot draws into --figure PATH.png: give --figure")
        plot_curves(a.plot, a.figure)
        print(f"wrote {a.figure}")
        return
    if not a.artifacts:
        ap.error("a run reads a published version: give --artifacts (or --plot JSON... --figure PNG to draw)")

    from sklearn.neighbors import LocalOutlierFactor

    from indexer.lens_learning import LensLearner, interest_learner, interest_scores
    from indexer.scores import lens_scores, seed_similarity
    from indexer.store import IndexedSurvey

    store = IndexedSurvey.open_current(a.artifacts)
    values = np.asarray(store.catalog[a.truth_column]).astype(str)
    emb = np.asarray(store.embeddings, dtype=np.float32)
    t0 = time.perf_counter()
    lof = -LocalOutlierFactor(n_neighbors=20).fit(emb).negative_outlier_factor_
    if a.target == "lens":
        truth = values == a.lens_value
        n_lens = int(truth.sum())
        require_measured("vote_rounds", objects=len(store), lenses=n_lens, lenses_beyond_seeds=n_lens - a.seeds)
        rng = np.random.default_rng(a.seed)
        seeds = np.sort(rng.choice(np.nonzero(truth)[0], a.seeds, replace=False))
        built = lens_scores(emb, seeds, seed=a.seed)  # the score a version built from the seeds holds
        learner = LensLearner(emb, seeds, seed=a.seed, features=store.lens_features, prior=built)  # learn=true's
        rankers: dict[str, Ranker] = {
            LEARNED: lambda pos, neg: learner.scores(pos, neg),
            "similarity_to_found": lambda pos, neg: seed_similarity(emb, np.concatenate([seeds, pos])),
            "seeds_only": lambda pos, neg: built,
            "lof": lambda pos, neg: lof,
            "astronomaly": astronomaly_ranker(emb, a.seed),
        }
    else:
        truth = np.isin(values, a.interesting.split(","))
        seeds = np.zeros(0, np.int64)
        n_lens = int(truth.sum())
        require_measured("vote_rounds", objects=len(store), interesting=n_lens)
        listed = np.asarray(store.combined if a.list == "combined" else store.anomaly, np.float32)
        interest = interest_learner(emb, listed, seed=a.seed, features=store.lens_features)  # learn=true's
        rankers = {
            LEARNED: lambda pos, neg: interest_scores(interest, {**{int(r): 0.0 for r in neg},
                                                                **{int(r): 1.0 for r in pos}}),
            "similarity_to_found": lambda pos, neg: seed_similarity(emb, pos) if len(pos) else listed,
            "list_only": lambda pos, neg: listed,
            "lof": lambda pos, neg: lof,
            "astronomaly": astronomaly_ranker(emb, a.seed),
        }
    seed_mask = np.zeros(len(store), bool)
    seed_mask[seeds] = True
    log(f"baselines' one-off fits {time.perf_counter() - t0:.1f} s")

    runs = {}
    metric = "recall" if a.target == "lens" else "precision"
    found = "lenses_voted" if a.target == "lens" else "interesting_voted"
    for votes in (int(v) for v in a.votes.split(",")):
        per = {name: run_loop(rank, truth, seeds, seed_mask, a.rounds, votes, a.k) for name, rank in rankers.items()}
        rows = []
        for r in range(a.rounds + 1):
            value = {name: loop[r][metric] for name, loop in per.items()}
            best_baseline = max(v for name, v in value.items() if name != LEARNED)
            rows.append({"round": r, "votes": per[LEARNED][r]["votes"],
                         found: {name: loop[r]["lenses_voted"] for name, loop in per.items()},
                         metric: value, "learned_at_least_best_baseline": value[LEARNED] >= best_baseline,
                         "rank_s": {name: loop[r]["rank_s"] for name, loop in per.items()}})
            log(f"{votes} votes/round, round {r}: " + ", ".join(f"{n} {v:.3f}" for n, v in value.items()))
        runs[str(votes)] = rows

    result = {
        "benchmark": "vote_rounds", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(short=True),
        "command": command_line(), "machine": host_machine(), "version": store.version,
        "target": a.target, "measure": f"recall@{a.k}" if a.target == "lens" else f"precision@{a.k}",
        "n_objects": len(store), "n_lenses": n_lens, "lenses_beyond_seeds": n_lens - len(seeds),
        "recall_cap": min(1.0, a.k / max(1, n_lens - len(seeds))),
        "measured_list": "voted lenses first, voted non-lenses left out, then the method's best unvoted candidates",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "runs": runs,
    }
    path = a.out or RESULTS_DIR / f"vote_rounds_{a.name}.json"
    write_json(path, result)
    names = list(rankers)
    for votes, rows in runs.items():
        if a.target == "lens":
            print(f"\n{votes} votes per round: recall@{a.k} of the {n_lens - a.seeds} lenses beyond the seeds "
                  "(lenses among the method's votes)")
        else:
            print(f"\n{votes} votes per round: precision@{a.k} for {a.interesting} ({n_lens} in the survey; "
                  "interesting among the method's votes)")
        print("| round | votes | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 2) + "|")
        for row in rows:
            print(f"| {row['round']} | {row['votes']} | "
                  + " | ".join(f"{row[metric][n]:.3f} ({row[found][n]})" for n in names) + " |")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
