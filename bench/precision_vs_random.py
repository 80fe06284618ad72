"""Does training help retrieval? Same-class precision@10 of a trained encoder vs the same backbone
with random weights, on a labelled (simulated) survey.

Queries: every object whose class is not "star" (the galaxies, lenses and artifacts included);
neighbours: all objects, brute-force cosine on the L2-normalised backbone output, self excluded;
both encoders use the trained model card's preprocessing (training.monitor.precision_vs_random).

Usage (repository root):
    nice -n 10 .venv/bin/python bench/precision_vs_random.py --encoder /tmp/demo_run/runs/demo/encoder \\
        --survey /tmp/demo_run/data/demo --out bench/results/precision_vs_random.json
    .venv/bin/python bench/precision_vs_random.py --markdown docs/training.md   # table from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, command_line, fill_markers, git_sha, require_measured, utc_now_minutes, write_json

from encoder.card import ModelCard
from survey.native import NativeSurvey
from training.monitor import precision_vs_random

BEGIN, END = "<!-- precision_vs_random:begin -->", "<!-- precision_vs_random:end -->"
RESULT = RESULTS_DIR / "precision_vs_random.json"


def markdown_table(r: dict) -> str:
    t, rw = r["metrics"]["trained"], r["metrics"]["random_weights"]
    rows = ["| queries | n | trained encoder | same backbone, random weights |", "|---|---|---|---|",
            f"| all non-star objects | {r['metrics']['n_queries']} | **{t['precision_at_k']:.3f}** "
            f"| {rw['precision_at_k']:.3f} |"]
    for c, v in t["per_class"].items():
        rows.append(f"| {c} | {v['n']} | {v['precision_at_k']:.3f} | {rw['per_class'][c]['precision_at_k']:.3f} |")
    rows.append(f"| *chance (random neighbours)* | | {r['metrics']['chance']:.3f} | {r['metrics']['chance']:.3f} |")
    s = r["settings"]
    rows.append(f"\nSame-class precision@{r['metrics']['k']}, {r['metrics']['n_objects']} objects of `{s['survey']}`, "
                f"encoder `{s['encoder']}` ({s['backbone']}, {s['training_steps']} steps); "
                f"{r['date']}, {r['git_sha']}. Made by `{r['command']}`.")
    return "\n".join(rows)


def write_markdown(doc: Path) -> None:
    fill_markers(doc, BEGIN, END, markdown_table(json.loads(RESULT.read_text())), append=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder", type=Path, help="encoder folder (model.safetensors + model.json)")
    p.add_argument("--survey", type=Path, help="native survey with a `class` column")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--out", type=Path, default=RESULT)
    p.add_argument("--markdown", type=Path, help="only rewrite the table in this doc from the JSON")
    args = p.parse_args()
    if args.markdown:
        write_markdown(args.markdown)
        return
    t0 = time.perf_counter()
    survey = NativeSurvey(args.survey)
    images = survey.images(np.arange(len(survey)))
    labels = np.asarray(survey.catalog["class"]).astype(str)
    metrics = precision_vs_random(args.encoder, images, labels, k=args.k, device=args.device, seed=args.seed)
    require_measured("precision_vs_random", objects=metrics["n_objects"], queries=metrics["n_queries"])
    card = ModelCard.load(args.encoder)
    res = {
        "name": "precision_vs_random",
        "git_sha": git_sha(short=True),
        "date": utc_now_minutes(),
        "command": command_line("python", "bench/precision_vs_random.py"),
        "machine": {"host": platform.node(), "cores": os.cpu_count(), "python": platform.python_version()},
        "settings": {"survey": str(args.survey), "encoder": str(args.encoder), "backbone": card.backbone,
                     "backbone_kwargs": card.backbone_kwargs, "training_steps": card.metrics.get("steps"),
                     "weights_sha256": card.weights_sha256, "random_seed": args.seed, "device": args.device},
        "repeats": 1,  # deterministic: embeddings and exact search
        "metrics": metrics,
        "wall_s": time.perf_counter() - t0,
    }
    write_json(args.out, res)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
