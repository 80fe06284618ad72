"""Pixel data-quality detectors on a simulated survey with known artifacts: per artifact kind, the
AUROC of each detector and of the combined quality score against the ordinary objects, the share of
artifacts in the top 100, and the detectors' throughput; the embedding anomaly score of a published
version of the same survey beside them when --artifacts is given (one run, the same objects).

    .venv/bin/skysift simulate --out data/sim_q --n 3000 --seed 3   # with SKYSIFT_SIM_ARTIFACT_FRACTION=0.1
    .venv/bin/python bench/bench_quality.py --survey data/sim_q

Writes bench/results/quality_<name>.json (or --out) and prints the Markdown table for docs/discovery.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, command_line, git_sha, host_machine, log, require_measured, utc_now_iso, write_json


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--survey", type=Path, required=True, help="a simulated survey (artifact_kind, class columns)")
    ap.add_argument("--artifacts", type=Path, help="artifacts root of a version of the same survey (optional)")
    ap.add_argument("--from-version", action="store_true",
                    help="take the detectors' values the --artifacts version stored (what it serves) instead of "
                         "measuring them again; no throughput then")
    ap.add_argument("--top", type=int, default=100)
    ap.add_argument("--name", default="sim")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()

    from indexer.quality import FEATURES, quality_score, robust_z, survey_quality
    from survey.native import NativeSurvey

    survey = NativeSurvey(a.survey)
    n = len(survey)
    t0 = time.perf_counter()
    if a.from_version:
        if not a.artifacts:
            raise SystemExit("--from-version reads the detectors of the --artifacts version: give --artifacts")
        import pyarrow.parquet as pq

        from indexer.artifacts import current_dir

        stored = pq.read_table(current_dir(a.artifacts) / "scores.parquet")
        feats = {k: stored.column(f"quality_{k}").to_numpy() for k in FEATURES}
        seconds = None
    else:
        feats = survey_quality(survey)
        seconds = time.perf_counter() - t0
    score, which = quality_score(feats)
    kind = np.asarray(survey.catalog["artifact_kind"]).astype(str)
    cls = np.asarray(survey.catalog["class"]).astype(str)
    ordinary = (kind == "") & (cls != "lens")
    kinds = sorted(set(kind.tolist()) - {""})
    require_measured("quality", objects=n, artifacts=int((kind != "").sum()), ordinary=int(ordinary.sum()))

    scores: dict[str, np.ndarray] = {**feats, "quality": score}
    if a.artifacts:
        from indexer.store import IndexedSurvey

        store = IndexedSurvey.open_current(a.artifacts)
        if len(store) != n:
            raise SystemExit(f"{a.artifacts} holds {len(store)} objects, the survey {n}")
        scores["embedding_anomaly"] = store.anomaly
        scores["combined"] = np.maximum(robust_z(store.anomaly), score)
    table: dict[str, dict[str, float]] = {}
    for name, v in scores.items():
        row = {k: auroc(v[ordinary | (kind == k)], (kind == k)[ordinary | (kind == k)]) for k in kinds}
        keep = ordinary | (kind != "")
        row["all artifacts"] = auroc(v[keep], (kind != "")[keep])
        table[name] = row
    top = np.argsort(-score, kind="stable")[: a.top]
    result = {
        "benchmark": "quality", "name": a.name, "date": utc_now_iso(), "git_sha": git_sha(short=True),
        "command": command_line(), "machine": host_machine(), "survey": str(a.survey), "n_objects": n,
        "counts": {k: int((kind == k).sum()) for k in kinds} | {"ordinary": int(ordinary.sum())},
        "auroc": table,
        "top": {"k": a.top, "artifacts": int((kind[top] != "").sum())},
        "flag_by_kind": {k: {FEATURES[i]: int((which[kind == k] == i).sum()) for i in range(len(FEATURES))}
                         for k in kinds},
        "detectors_from": "version" if a.from_version else "measured",
        "detector_seconds": None if seconds is None else round(seconds, 2),
        "objects_per_s": None if seconds is None else round(n / seconds, 1),
    }
    path = a.out or RESULTS_DIR / f"quality_{a.name}.json"
    write_json(path, result)
    head = "| score | " + " | ".join(f"{k} (n={result['counts'][k]})" for k in kinds) + " | all artifacts |"
    lines = [head, "|---" * (len(kinds) + 2) + "|"]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in [*kinds, "all artifacts"]) + " |")
    print("\n".join(lines))
    speed = "" if seconds is None else f"{result['objects_per_s']} objects/s; "
    log(f"top {a.top} of the quality score: {result['top']['artifacts']} artifacts; {speed}wrote {path}")


if __name__ == "__main__":
    main()
