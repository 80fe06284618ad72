"""`skysift evaluate`: the science tasks on one published version, as one JSON report.

    skysift evaluate --artifacts artifacts --survey data/bench --out runs/evaluate/bench \\
        --figures docs/img/science --docs docs/science.md --what-tried docs/science_tried.md

Everything is measured on the version the service uses (its embeddings, index, anomaly score and
encoder) against the simulation's ground truth in its catalog (`class`, `z`, `is_lens`,
`artifact_kind`, `mag_r`). One seeded train/val/test split serves every task (`splits`).

Report (`report.json`, schema "skysift.evaluation/1"):

    schema, created, git_sha, command, seconds
    settings                 resolved EvaluateSettings
    version                  {dir, version, n_objects, embedding_dim, index, scores, encoder, survey}
    splits                   {seed, train, val, test}
    timings_s                {task: seconds}
    tasks.morphology         {classes, excluded_classes, headline_metric, n_train_labelled, n_val, n_test,
                              chance {predict, accuracy, macro_f1},
                              probe [{fraction, n_labels, accuracy, macro_f1, C, val_macro_f1, recall}],
                              supervised [{fraction, n_labels, accuracy, macro_f1, recall, epochs, steps, ...}],
                              probe_reaches_supervised_full {metric, supervised_full_score, fraction,
                                                             first_measured_fraction}}
    tasks.photoz             {population, n_train, n_val, n_test, mag_column_edges,
                              knn {k, aggregate, val_sigma_mad_by_k, overall, by_mag},
                              supervised {overall, by_mag, epochs, steps, ...}, baseline_median_z {...}}
                             overall = {sigma_mad, outlier_fraction, bias, n}; by_mag = [{lo, hi, ...}]
    tasks.lenses             {n_objects, n_lenses, n_seeds, n_evaluated, n_positive_evaluated, positive_rate,
                              recall_k, headline_ranker, rankers {name: {recall_at_100, recall_at_100_ceiling,
                              precision_at_k {k: p}, r_precision, auprc, pr_curve {recall, precision}}}}
    tasks.anomalies          {score, rare_classes, top_k, headline_set,
                              sets {artifacts|rare_classes|combined: {auroc, precision_at_100, n_positive,
                              n_negative, positive_rate, roc_curve {fpr, tpr}}}, per_artifact_kind, per_class}
    tasks.retrieval          {precision {k, overall, per_class, n_queries}, map {map, n_queries, per_class},
                              augmented_copy {n, top_k, found_in_top_5, top_1_exact, median_rank_exact,
                              augmentation, seed}, gallery {queries, neighbours}}
    tasks.finetune           {fractions, fit {...}, morphology|photoz {metric, higher_is_better, n_train, n_val,
                              n_test, points [{fraction, n_labels, probe, finetuned, scratch}]}}
                             (evaluation/finetune_compare.py; also written as OUT/finetune.md)
    targets                  [{id, task, claim, metric, value, target, direction, met, shortfall, note}]
    figures                  {label_efficiency|photoz_scatter|lens_precision_recall|anomaly_roc|gallery: path}

A task left out by `tasks` is absent from `tasks`, and its targets read met = None.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from encoder.weights import load_encoder
from indexer.artifacts import current_dir, now_iso
from indexer.build import code_version
from indexer.pipeline import resolve_device
from indexer.store import IndexedSurvey

from . import figures as figs
from .anomalies import run_anomalies
from .baseline import CNNConfig, RowPixels, train_cnn
from .errors import MissingTruth
from .lenses import run_lenses
from .morphology import CNNRunner, run_morphology
from .photoz import run_photoz
from .retrieval import augmented_copy_search, same_class_map, same_class_precision, unit_vectors
from .settings import EvaluateSettings
from .splits import three_way_split
from .targets import evaluate_targets

SCHEMA = "skysift.evaluation/1"
TRUTH = {
    "morphology": ("class",),
    "photoz": ("class", "z"),
    "lenses": ("is_lens",),
    "anomalies": ("class", "artifact_kind"),
    "retrieval": ("class",),
    "finetune": ("class",),  # and z for its photo-z part, where the catalog has it
}


def _run_cnn(
    pixels: RowPixels, card: Any, cfg: CNNConfig, train: np.ndarray, test: np.ndarray, targets: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    return train_cnn(pixels, targets, card, cfg, train_rows=train, test_rows=test)


def open_version(s: EvaluateSettings) -> IndexedSurvey:
    version_dir = Path(s.version) if s.version is not None else current_dir(Path(s.artifacts))  # type: ignore[arg-type]
    return IndexedSurvey(version_dir, s.survey)


def _check_truth(store: IndexedSurvey, s: EvaluateSettings) -> None:
    need = {c for t in s.tasks for c in TRUTH[t]} | ({s.magnitude_column} if "photoz" in s.tasks else set())
    missing = sorted(c for c in need if c not in store.catalog)
    if missing:
        raise MissingTruth(
            f"{store.dir}: catalog.parquet has no ground-truth column(s) {missing} needed by "
            f"tasks {list(s.tasks)}; evaluate a simulated survey, or leave those tasks out"
        )


def _sample(rows: np.ndarray, n: int, seed: int, salt: int) -> np.ndarray:
    if len(rows) <= n:
        return np.asarray(rows)
    return np.sort(np.random.default_rng(np.random.SeedSequence([seed, salt])).choice(rows, n, replace=False))


def evaluate(s: EvaluateSettings, command: str = "", log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the tasks, write report.json (and figures, and the docs page when asked); return the report."""
    t_start = time.perf_counter()
    s = s.model_copy(update={"device": resolve_device(s.device)})
    store = open_version(s)
    _check_truth(store, s)
    cat = store.catalog
    n = len(store)
    classes = np.asarray(cat["class"]).astype(str) if "class" in cat else np.full(n, "")
    emb = unit_vectors(store.embeddings)
    split = three_way_split(n, s.test_fraction, s.val_fraction, s.seed)
    encoder, card = load_encoder(store.encoder_dir, s.device)
    log(f"version {store.version}: {n} objects x {emb.shape[1]} dims; split {split.sizes()}")

    cnn: CNNRunner | None = None
    if s.supervised:
        cfg = CNNConfig.from_card(card, s.cnn_backbone_kwargs, epochs=s.cnn_epochs, min_steps=s.cnn_min_steps,
                                  max_steps=s.cnn_max_steps, batch_size=s.cnn_batch_size, lr=s.cnn_lr, seed=s.seed,
                                  device=s.device)
        cnn = partial(_run_cnn, RowPixels(store, card.preprocess.input_size_px), card, cfg)

    tasks: dict[str, Any] = {}
    timings: dict[str, float] = {}
    extras: dict[str, Any] = {}
    for task in s.tasks:
        log(f"{task}:")
        t0 = time.perf_counter()
        if task == "morphology":
            tasks[task] = run_morphology(emb, classes, split, fractions=s.label_fractions,
                                         cnn_fractions=s.cnn_fractions, Cs=s.probe_C, exclude=s.morphology_exclude,
                                         seed=s.seed, cnn=cnn, log=log)
        elif task == "photoz":
            magnitude = np.asarray(cat[s.magnitude_column], dtype=np.float64)
            tasks[task], extras["photoz"] = run_photoz(emb, cat["z"], classes, magnitude, split, ks=s.photoz_k,
                                                       mag_edges=s.mag_edges, exclude=s.photoz_exclude, cnn=cnn,
                                                       log=log)
        elif task == "lenses":
            tasks[task] = run_lenses(emb, cat["is_lens"], n_seeds=s.lens_seeds, negatives=s.lens_negatives,
                                     folds=s.lens_folds, ks=s.lens_ks, recall_k=s.lens_recall_k, seed=s.seed, log=log)
        elif task == "anomalies":
            def anomalies(name: str, score: np.ndarray) -> dict[str, Any]:
                return run_anomalies(score, classes, cat["artifact_kind"], rare_classes=s.rare_classes,
                                     top_k=s.anomaly_top_k, description=store.info.describe(name) or "", log=log)

            tasks[task] = anomalies("anomaly", store.anomaly)
            # the pixel data-quality score and the combined list, on the same truth (versions built
            # before them have none)
            others = {}
            for name, score in (("artifact", store.quality), ("combined", store.combined)):
                if np.isfinite(score).any():
                    log(f"  {name} score:")
                    others[name] = anomalies(name, score)
            tasks[task]["other_scores"] = others
        elif task == "retrieval":
            tasks[task] = _retrieval(store, emb, classes, encoder, card, s, log)
        elif task == "finetune":
            tasks[task] = _finetune(store, emb, classes, split, encoder, card, s, log)
        timings[task] = round(time.perf_counter() - t0, 2)

    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": now_iso(),
        "git_sha": code_version(),
        "command": command,
        "settings": s.model_dump(mode="json"),
        "version": _version_info(store, card),
        "splits": {"seed": s.seed, **split.sizes()},
        "timings_s": timings,
        "tasks": tasks,
        "targets": evaluate_targets(tasks),
        "figures": {},
    }
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if s.figures:
        report["figures"] = _figures(report, extras, store, classes, split, s, out, log)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    report = _clean(report)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    log(f"report: {path}")
    if "finetune" in report["tasks"]:
        from .finetune_table import table

        (out / "finetune.md").write_text("\n".join(table(report["tasks"]["finetune"])))
        log(f"fine-tuning table: {out / 'finetune.md'}")
    if s.docs is not None:
        from .science_doc import write_doc

        write_doc(report, Path(s.docs), s.what_tried)
        log(f"docs: {s.docs}")
    return report


def _retrieval(store: IndexedSurvey, emb: np.ndarray, classes: np.ndarray, encoder: Any, card: Any,
               s: EvaluateSettings, log: Callable[[str], None]) -> dict[str, Any]:
    p = same_class_precision(store, k=s.retrieval_k, exclude=s.retrieval_exclude)
    precision = {
        "k": p["k"],
        "overall": p["precision_at_k"],
        "n_queries": p["n_queries"],
        "per_class": {k[15:-1]: v for k, v in p.items() if k.startswith("precision_at_k[")},
        "excluded_query_classes": list(s.retrieval_exclude),
    }
    log(f"  same-class precision@{s.retrieval_k}: {precision['overall']:.3f} over {p['n_queries']} queries")
    pool = np.nonzero(~np.isin(classes, list(s.retrieval_exclude)))[0]
    m = same_class_map(emb, classes, _sample(pool, s.map_queries, s.seed, 0x3A9))
    log(f"  mAP: {m['map']:.3f} over {m['n_queries']} queries")
    copy = augmented_copy_search(store, encoder, card, _sample(pool, s.copy_queries, s.seed, 0xC0F),
                                 top_k=s.copy_top_k, seed=s.seed, noise_max_factor=s.copy_noise_max_factor,
                                 device=s.device, classes=classes)
    log(f"  augmented copy: original in the top {s.copy_top_k} for {copy[f'found_in_top_{s.copy_top_k}']:.3f}")
    return {"precision": precision, "map": m, "augmented_copy": copy}


def _finetune(store: IndexedSurvey, emb: np.ndarray, classes: np.ndarray, split: Any, encoder: Any, card: Any,
              s: EvaluateSettings, log: Callable[[str], None]) -> dict[str, Any]:
    from training.finetune import FitConfig

    from .finetune_compare import run_finetune_compare

    cfg = FitConfig(task="classification", head_hidden=s.finetune_head_hidden, epochs=s.finetune_epochs,
                    min_steps=s.finetune_min_steps, max_steps=s.finetune_max_steps,
                    freeze_epochs=s.finetune_freeze_epochs, lr=s.cnn_lr, batch_size=s.cnn_batch_size,
                    patience=s.finetune_patience, seed=s.seed, device=s.device)
    z = store.catalog["z"] if "z" in store.catalog else None
    card = card.for_survey(store.units)  # the survey's own preprocessing levels (encoder.preprocess.for_survey)
    return run_finetune_compare(store, emb, classes, z, split, card, encoder.state_dict(),
                                fractions=s.finetune_fractions, cfg=cfg, Cs=s.probe_C,
                                morphology_exclude=s.morphology_exclude, photoz_exclude=s.photoz_exclude, seed=s.seed,
                                log=log)


def _version_info(store: IndexedSurvey, card: Any) -> dict[str, Any]:
    m = store.info
    return {
        "dir": str(store.dir),
        "version": store.version,
        "n_objects": len(store),
        "embedding_dim": int(store.embeddings.shape[1]),
        "index": {"factory": m.index.factory, "recall_at_10": m.index.recall_at_10},
        "scores": m.scores,
        "encoder": {
            "weights_sha256": card.weights_sha256,
            "backbone": card.backbone,
            "backbone_kwargs": card.backbone_kwargs,
            "produced_by": card.produced_by,
            "trained_on": card.training.get("data", {}),
        },
        "survey": m.survey.model_dump(mode="json"),
    }


def _gallery_rows(classes: np.ndarray, rows: np.ndarray, exclude: tuple[str, ...], n: int, seed: int) -> np.ndarray:
    """One test object per class (classes in order, cycling until n), seeded."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6A1]))
    by_class = {
        c: list(rng.permutation(rows[classes[rows] == c]))
        for c in sorted(set(classes[rows].tolist()))
        if c not in exclude
    }
    out: list[int] = []
    while len(out) < n and any(by_class.values()):
        for members in by_class.values():
            if members and len(out) < n:
                out.append(int(members.pop()))
    return np.asarray(out, dtype=np.int64)


def _figures(report: dict[str, Any], extras: dict[str, Any], store: IndexedSurvey, classes: np.ndarray, split: Any,
             s: EvaluateSettings, out: Path, log: Callable[[str], None]) -> dict[str, str]:
    d = Path(s.figures_dir) if s.figures_dir is not None else out / "figures"
    t = report["tasks"]
    made: dict[str, Path] = {}
    if "morphology" in t:
        made["label_efficiency"] = figs.label_efficiency(t["morphology"], d / "label_efficiency.png")
    if "photoz" in t:
        made["photoz_scatter"] = figs.photoz_scatter(t["photoz"], extras["photoz"], d / "photoz_scatter.png")
    if "lenses" in t:
        made["lens_precision_recall"] = figs.lens_precision_recall(t["lenses"], d / "lens_precision_recall.png")
    if "anomalies" in t:
        made["anomaly_roc"] = figs.anomaly_roc(t["anomalies"], d / "anomaly_roc.png")
    if "retrieval" in t:
        rows = _gallery_rows(classes, split.test, s.retrieval_exclude, s.gallery_queries, s.seed)
        t["retrieval"]["gallery"] = figs.gallery(store, rows, s.gallery_neighbours, d / "gallery.png")
        made["gallery"] = d / "gallery.png"
    log(f"figures: {d}")
    return {k: str(v) for k, v in made.items()}


def _clean(o: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays become Python ones, NaN and inf become None
    (an undefined metric, e.g. a recall with no positive), so the file is strict JSON."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
