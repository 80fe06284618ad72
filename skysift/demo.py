"""`skysift demo`: simulate -> encoder -> index -> measure -> serve, skipping steps already done.

skysift demo                 # everything, then serve on http://127.0.0.1:8000, with the shipped encoder
skysift demo --train         # the same with an encoder trained on the demo survey (8 CPU epochs)
skysift demo --build-only    # stop before serving
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

console = Console()

# Epochs of `skysift demo --train`: what the demo's own encoder sees, and the yardstick the shipped
# encoder's training is measured against (tests/encoder/test_shipped_encoder.py: >= 20x its images).
DEMO_TRAIN_EPOCHS = 8


def _known_lenses(survey_dir: Path, n_known: int, seed: int) -> Path:
    """A CSV of `n_known` true lenses, standing in for a survey's list of confirmed lenses."""
    from survey.native import NativeSurvey

    cat = NativeSurvey(survey_dir).catalog
    lenses = np.nonzero(np.asarray(cat["is_lens"], dtype=bool))[0]
    pick = np.random.default_rng(seed).permutation(lenses)[:n_known]
    path = survey_dir / "known_lenses.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object_id"])
        w.writerows([[cat["object_id"][i]] for i in sorted(pick)])
    return path


def pick_encoder(runs: Path, train_own: bool) -> tuple[Path, bool]:
    """(encoder folder, whether the demo trains it): the shipped encoder unless --train asks for the
    demo's own run (or this checkout has no shipped one)."""
    from encoder.shipped import shipped_encoder

    shipped = None if train_own else shipped_encoder()
    return (shipped, False) if shipped is not None else (runs / "encoder", True)


def build(
    data: Path, runs: Path, artifacts: Path, n_objects: int | None, epochs: int, seed: int, results: Path | None,
    train_own: bool = False,
) -> dict:
    from evaluation.retrieval import same_class_precision
    from indexer.artifacts import current_dir
    from indexer.pipeline import index_survey
    from indexer.settings import IndexSettings
    from indexer.store import IndexedSurvey
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate
    from training.loop import train
    from training.settings import TrainSettings

    timings: dict[str, float] = {}
    t = time.perf_counter()
    sim = SimSettings(out_dir=data, preset="demo", n_objects=n_objects, seed=seed)
    console.rule(f"1/4 simulate {sim.size} objects -> {data}")
    simulate(sim)
    timings["simulate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    enc, trains = pick_encoder(runs, train_own)
    if not trains:  # the index step checks its weights against its card's sha256
        console.rule(f"2/4 encoder: the shipped one, {enc} (--train trains the demo's own)")
    elif (enc / "model.safetensors").exists():
        console.rule(f"2/4 encoder: trained before at {enc}")
        console.print("delete it to train again")
    else:
        console.rule(f"2/4 train the encoder ({epochs} epochs, MoCo v2) -> {enc}")
        # A queue of ~1/6 of the 6,000 objects: a bigger one holds an object's own earlier keys as negatives.
        queue = 1024
        cmd = f"skysift train --survey {data} --out {runs} --epochs {epochs} --seed {seed} --queue-size {queue}"
        ts = TrainSettings(survey=data, out_dir=runs, epochs=epochs, seed=seed, queue_size=queue, produced_by=cmd,
                           resume=True)
        train(
            ts,
            on_step=lambda r: console.print(
                f"  step {r['step']} loss {r['loss']:.3f} {r['images_per_s']:.0f} img/s"
                if "loss" in r
                else f"  epoch {r['epoch']} kNN precision@10 {r['knn_precision_at_10']:.3f}"
            ),
        )
    timings["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    console.rule(f"3/4 index -> {artifacts}")
    lens_csv = _known_lenses(data, 12, seed)
    s = IndexSettings(
        survey=data, encoder=enc, artifacts=artifacts, job=f"demo-{int(time.time())}", lens_labels=lens_csv
    )
    version = index_survey(s, log=console.print)
    timings["index_s"] = time.perf_counter() - t

    console.rule("4/4 measure")
    store = IndexedSurvey(current_dir(artifacts))
    p = same_class_precision(store, k=10)
    out = {
        "version": version,
        "encoder": str(enc.relative_to(Path.cwd()) if enc.is_relative_to(Path.cwd()) else enc),
        "n_objects": len(store),
        "same_class_precision_at_10": p,
        "timings": timings,
        "recall_at_10": store.manifest["index"]["recall_at_10"],
    }
    console.print(f"same-class precision@10 over {p['n_queries']} galaxies: [bold]{p['precision_at_k']:.3f}[/bold]")
    for key, v in p.items():
        if key.startswith("precision_at_k["):
            console.print(f"  {key[15:-1]:<12} {v:.3f}")
    if results:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(out, indent=2) + "\n")
        console.print(f"written to {results}")
    return out


def demo(
    data: Annotated[Path, typer.Option(help="simulated survey folder")] = Path("data/demo"),
    runs: Annotated[Path, typer.Option(help="training run folder")] = Path("runs/demo"),
    artifacts: Annotated[Path, typer.Option(help="artifacts root")] = Path("artifacts"),
    n_objects: Annotated[int | None, typer.Option("--n", help="objects (default: the demo preset)")] = None,
    epochs: Annotated[int, typer.Option(help="with --train: epochs of the demo's own encoder")] = DEMO_TRAIN_EPOCHS,
    seed: int = 1,
    train: Annotated[bool, typer.Option("--train", help="train the demo's own encoder instead of using the "
                                                         "shipped one (models/)")] = False,
    results: Annotated[Path | None, typer.Option(help="where to write the measured figures")] = Path(
        "docs/demo_results.json"
    ),
    build_only: Annotated[bool, typer.Option("--build-only", help="do not serve")] = False,
    port: int = 8000,
) -> None:
    """Build the demo survey, encoder and index, print its retrieval quality, then serve it."""
    build(data, runs, artifacts, n_objects, epochs, seed, results, train_own=train)
    if not build_only:
        from app.cli import serve

        from .config import Layers

        console.rule(f"serving on http://127.0.0.1:{port}")
        serve(artifacts=artifacts, host="127.0.0.1", port=port, settings=Layers())  # + SKYSIFT_* variables


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
