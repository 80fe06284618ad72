"""`skysift evaluate`: science metrics of a published version on the simulation's ground truth.

    skysift evaluate --artifacts artifacts --survey data/bench --out runs/evaluate/bench \\
        --figures-dir docs/img/science --docs docs/science.md --what-tried docs/science_tried.md --threads 2
    skysift evaluate --version artifacts/versions/<version> --tasks lenses,anomalies --no-figures
    skysift evaluate --artifacts artifacts --cnn-max-steps 3 --cnn-min-steps 0 --copy-queries 50   # a quick look
    skysift evaluate --artifacts artifacts --tasks finetune --finetune-fractions 0.01,0.1,0.25,0.5,1 \\
        --finetune-epochs 20 --out runs/evaluate/finetune       # probe vs fine-tuned vs from scratch

Options left out take EvaluateSettings' defaults (or SKYSIFT_EVAL_* environment variables); lists
are comma-separated. Every field, also those without an option here, can come from --set or --config:

    skysift evaluate --artifacts artifacts --set lens_folds=3 --set probe_C=0.1,1 --config eval.toml
 The report is OUT/report.json (layout: evaluation/evaluate.py).

    skysift science-doc --report docs/science_report.json --docs docs/science.md \\
        --what-tried docs/science_tried.md              # re-render the page from a report, nothing run
    nice -n 10 skysift supervised-check --survey /tmp/demo_run/data/demo --epochs 8 \\
        --out bench/results/simulate_labels_check.json --figure docs/img/survey_supervised.png --docs docs/survey.md
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()


def _floats(v: str | None) -> tuple[float, ...] | None:
    return None if v is None else tuple(float(x) for x in v.split(",") if x.strip())


def _ints(v: str | None) -> tuple[int, ...] | None:
    return None if v is None else tuple(int(x) for x in v.split(",") if x.strip())


def _strs(v: str | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(x.strip() for x in v.split(",") if x.strip())


_FLAG = {"out_dir": "out", "figures": ("--figures", "--no-figures"), "supervised": ("--supervised", "--no-supervised")}


def _command(given: dict[str, Any], threads: int | None) -> str:
    """The command line that reproduces this run (rebuilt from the options, so it is the same
    whether typed, scripted or called from a test)."""
    parts = ["skysift", "evaluate"]
    for key, v in {**given, "threads": threads}.items():
        if v is None:
            continue
        flag = _FLAG.get(key, key)
        if isinstance(flag, tuple):
            parts.append(flag[0] if v else flag[1])
            continue
        if isinstance(v, tuple):
            v = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        elif isinstance(v, dict):
            v = json.dumps(v)
        parts += ["--" + flag.replace("_", "-"), str(v)]
    return shlex.join(parts)


def evaluate(
    version: Annotated[Path | None, typer.Option(help="a version directory (artifacts/versions/<v>)")] = None,
    artifacts: Annotated[Path | None, typer.Option(help="artifacts root: evaluate its current version")] = None,
    survey: Annotated[Path | None, typer.Option(help="survey folder for pixels (default: the manifest's)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder for report.json")] = None,
    figures_dir: Annotated[Path | None, typer.Option(help="where the PNGs go (default OUT/figures)")] = None,
    figures: Annotated[bool | None, typer.Option("--figures/--no-figures", help="draw the figures")] = None,
    docs: Annotated[Path | None, typer.Option(help="also render this page, e.g. docs/science.md")] = None,
    what_tried: Annotated[Path | None, typer.Option(help="markdown for the page's 'what was tried'")] = None,
    tasks: Annotated[
        str | None, typer.Option(help="comma list of morphology,photoz,lenses,anomalies,retrieval,finetune")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="split, subsets, seeds, augmentations")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N (CNN, copy embedding)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (1 is fastest on a busy machine)")] = None,
    test_fraction: Annotated[float | None, typer.Option()] = None,
    val_fraction: Annotated[float | None, typer.Option()] = None,
    label_fractions: Annotated[str | None, typer.Option(help="probe label fractions, e.g. 0.01,0.1,1")] = None,
    cnn_fractions: Annotated[str | None, typer.Option(help="CNN label fractions; must include 1")] = None,
    supervised: Annotated[bool | None, typer.Option("--supervised/--no-supervised", help="train the CNN")] = None,
    cnn_epochs: Annotated[int | None, typer.Option()] = None,
    cnn_min_steps: Annotated[int | None, typer.Option()] = None,
    cnn_max_steps: Annotated[int | None, typer.Option()] = None,
    cnn_batch_size: Annotated[int | None, typer.Option()] = None,
    cnn_backbone_kwargs: Annotated[str | None, typer.Option(help="JSON; default: the encoder card's")] = None,
    finetune_fractions: Annotated[str | None, typer.Option(
        help="label fractions of the probe / fine-tuned / from-scratch comparison, e.g. 0.01,0.1,0.25,0.5,1")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(help="at most this many epochs per fine-tuned model")] = None,
    finetune_min_steps: Annotated[int | None, typer.Option()] = None,
    finetune_max_steps: Annotated[int | None, typer.Option()] = None,
    finetune_freeze_epochs: Annotated[int | None, typer.Option(help="head-only epochs first")] = None,
    photoz_k: Annotated[str | None, typer.Option(help="kNN k values to choose from")] = None,
    lens_seeds: Annotated[int | None, typer.Option(help="labelled lenses")] = None,
    lens_negatives: Annotated[int | None, typer.Option()] = None,
    rare_classes: Annotated[str | None, typer.Option(help="classes counted as anomalies")] = None,
    map_queries: Annotated[int | None, typer.Option()] = None,
    copy_queries: Annotated[int | None, typer.Option()] = None,
    gallery_queries: Annotated[int | None, typer.Option()] = None,
    *,
    settings: Callable[..., Any],
) -> None:
    """Measure the representation on ground truth: probe vs CNN, photo-z, lenses, anomalies, retrieval,
    and frozen probe vs fine-tuned vs from scratch at label fractions."""
    from .evaluate import evaluate as run
    from .settings import EvaluateSettings

    given: dict[str, Any] = {
        "version": version,
        "artifacts": artifacts,
        "survey": survey,
        "out_dir": out,
        "figures_dir": figures_dir,
        "figures": figures,
        "docs": docs,
        "what_tried": what_tried,
        "tasks": _strs(tasks),
        "seed": seed,
        "device": device,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "label_fractions": _floats(label_fractions),
        "cnn_fractions": _floats(cnn_fractions),
        "supervised": supervised,
        "cnn_epochs": cnn_epochs,
        "cnn_min_steps": cnn_min_steps,
        "cnn_max_steps": cnn_max_steps,
        "cnn_batch_size": cnn_batch_size,
        "cnn_backbone_kwargs": json.loads(cnn_backbone_kwargs) if cnn_backbone_kwargs else None,
        "finetune_fractions": _floats(finetune_fractions),
        "finetune_epochs": finetune_epochs,
        "finetune_min_steps": finetune_min_steps,
        "finetune_max_steps": finetune_max_steps,
        "finetune_freeze_epochs": finetune_freeze_epochs,
        "photoz_k": _ints(photoz_k),
        "lens_seeds": lens_seeds,
        "lens_negatives": lens_negatives,
        "rare_classes": _strs(rare_classes),
        "map_queries": map_queries,
        "copy_queries": copy_queries,
        "gallery_queries": gallery_queries,
    }
    # Bad settings (exit 2) and named errors (exit 1) end the command with one line: skysift/errors.py.
    s = settings(EvaluateSettings, given)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    report = run(s, command=_command(given, threads), log=console.print)
    for t in report["targets"]:
        mark = {True: "[green]met   [/green]", False: "[red]missed[/red]", None: "n/a   "}[t["met"]]
        value = "n/a" if t["value"] is None else f"{t['value']:.4g}"
        target = "n/a" if t["target"] is None else f"{t['target']:.4g}"
        console.print(f"{mark}  {t['claim']}: {value} ({t['direction']} {target})")


def science_doc(
    report: Annotated[Path, typer.Option(help="report.json written by skysift evaluate")],
    docs: Annotated[Path, typer.Option(help="the page to write")] = Path("docs/science.md"),
    what_tried: Annotated[Path | None, typer.Option(help="markdown for the 'what was tried' section")] = None,
) -> None:
    """Render docs/science.md from an evaluation report (evaluation/science_doc.py)."""
    from .science_doc import write_doc

    console.print(f"wrote {write_doc(json.loads(report.read_text()), docs, what_tried)}")


def supervised_check(
    survey: Annotated[Path, typer.Option(help="folder of native shards with class and z columns")],
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    test_fraction: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.25,
    limit: Annotated[int | None, typer.Option(min=1, help="use only the first N objects")] = None,
    # One thread: on the shared 2-core machine two threads ran 4-5x slower (4 vs 19 img/s, barrier waits).
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads")] = 1,
    out: Annotated[Path | None, typer.Option(help="results JSON")] = None,
    figure: Annotated[Path | None, typer.Option(help="confusion matrix + photo-z scatter PNG")] = None,
    docs: Annotated[Path | None, typer.Option(help="markdown file whose marked table is rewritten")] = None,
) -> None:
    """A supervised CNN on the survey's pixels, and the check that its labels are learnable from
    pixels and not from a leak (evaluation/supervised.py)."""
    from .supervised import check, markdown

    given = {"survey": survey, "epochs": epochs, "seed": seed, "test_fraction": test_fraction, "limit": limit,
             "threads": threads, "out": out, "figure": figure, "docs": docs}
    command = shlex.join(["skysift", "supervised-check", *(a for key, v in given.items() if v is not None
                                                           for a in ("--" + key.replace("_", "-"), str(v)))])
    result = check(survey, epochs=epochs, seed=seed, test_fraction=test_fraction, limit=limit, threads=threads,
                   command=command, out=out, figure_path=figure, docs=docs)
    print(markdown(result))  # noqa: T201 - entry point: the table, unwrapped


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("science-doc")(science_doc)
    app.command("supervised-check")(supervised_check)
