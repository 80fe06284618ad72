"""Render `docs/science.md` from an evaluation report (report.json), never from stdout.

    skysift evaluate ... --docs docs/science.md --what-tried docs/science_tried.md     # run + render
    skysift science-doc --report runs/evaluate/bench/report.json --docs docs/science.md \\
        --what-tried docs/science_tried.md                                                 # re-render only

The page puts every issue-#9 target beside its measured value, says by how much a missed target
is missed, shows each figure with the command that made it, and keeps a marked section for what
was tried, whose text comes from a separate markdown file (so re-rendering never loses it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TRIED_BEGIN = "<!-- what-was-tried:begin (from the --what-tried file; edit that file, not this page) -->"
TRIED_END = "<!-- what-was-tried:end -->"
NOTHING_TRIED = "_Nothing recorded yet: write it in a markdown file and pass `--what-tried FILE`._"


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def _pct(f: float) -> str:
    return f"{f * 100:g}%"


def _figure(report: dict[str, Any], key: str, docs_path: Path, caption: str) -> list[str]:
    path = report.get("figures", {}).get(key)
    if not path:
        return []
    rel = os.path.relpath(Path(path).resolve(), docs_path.parent.resolve())
    return [f"![{caption}]({rel})", "", f"*{caption}.* Made by: `{report['command'] or 'skysift evaluate'}`", ""]


def _targets(report: dict[str, Any]) -> list[str]:
    lines = ["| target | metric | measured | target | met | missed by |", "|---|---|---:|---:|:-:|---:|"]
    notes = []
    for t in report["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        missed = _f(t["shortfall"], 4) if t["met"] is False else ""
        lines.append(
            f"| {t['claim']} | {t['metric']} | {_f(t['value'], 4)} | {t['direction']} {_f(t['target'], 4)} "
            f"| {met} | {missed} |"
        )
        if t["met"] is False:
            how = (
                f"{t['value']:.4f} against {t['direction']} {t['target']:.4f}: missed by {t['shortfall']:.4f}"
                if t["value"] is not None
                else ""
            )
            notes.append(f"- **{t['claim']}**: {how}{'; ' if how and t['note'] else ''}{t['note']}.")
        elif t["note"] and t["met"] is None:
            notes.append(f"- {t['claim']}: {t['note']}.")
    if notes:
        lines += ["", *notes]
    return lines


def _morphology(m: dict[str, Any]) -> list[str]:
    cnn = {p["fraction"]: p for p in m["supervised"]}
    lines = [
        f"{len(m['classes'])} classes ({', '.join(m['classes'])}; not {', '.join(m['excluded_classes'])}); "
        f"{m['n_train_labelled']:,} labelled train objects, {m['n_val']:,} validation (probe C), "
        f"{m['n_test']:,} test. Always predicting `{m['chance']['predict']}` scores accuracy "
        f"{_f(m['chance']['accuracy'])}, macro-F1 {_f(m['chance']['macro_f1'])}.",
        "",
        "| labels | n | probe accuracy | probe macro-F1 | CNN accuracy | CNN macro-F1 | CNN steps |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in m["probe"]:
        c = cnn.get(p["fraction"])
        lines.append(
            f"| {_pct(p['fraction'])} | {p['n_labels']:,} | {_f(p['accuracy'])} | {_f(p['macro_f1'])} | "
            f"{_f(c['accuracy']) if c else ''} | {_f(c['macro_f1']) if c else ''} | "
            f"{c['steps'] if c else ''} |"
        )
    r = m.get("probe_reaches_supervised_full")
    if r:
        lines += [
            "",
            (
                f"The probe reaches the CNN's 100%-label {r['metric']} ({_f(r['supervised_full_score'])}) at "
                f"**{_pct(r['fraction'])}** of the labels (interpolated in log fraction; first measured point "
                f"{_pct(r['first_measured_fraction'])})."
                if r["fraction"] is not None
                else f"The probe does not reach the CNN's 100%-label {r['metric']} ({_f(r['supervised_full_score'])}) "
                "at any measured label fraction."
            ),
        ]
    return lines


def _photoz(p: dict[str, Any]) -> list[str]:
    models = [("kNN on embeddings (k = {k})".format(k=p["knn"]["k"]), p["knn"])]
    if "supervised" in p:
        models.append(("supervised CNN", p["supervised"]))
    models.append((f"always the training median z = {p['baseline_median_z']['predict']:.3f}", p["baseline_median_z"]))
    lines = [
        f"{p['population']}: {p['n_train']:,} train, {p['n_val']:,} validation (k), {p['n_test']:,} test.",
        "",
        "| model | sigma_MAD | outlier fraction eta | bias | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in models:
        o = s["overall"]
        lines.append(
            f"| {name} | {_f(o['sigma_mad'], 4)} | {_f(o['outlier_fraction'])} | {_f(o['bias'], 4)} | {o['n']:,} |"
        )
    lines += [
        "",
        "By r magnitude (sigma_MAD / eta):",
        "",
        "| mag | n | " + " | ".join(n.split(" (")[0] for n, _ in models) + " |",
        "|---|---:|" + "---:|" * len(models),
    ]
    for i, b in enumerate(p["knn"]["by_mag"]):
        cells = [f"{_f(s['by_mag'][i]['sigma_mad'], 4)} / {_f(s['by_mag'][i]['outlier_fraction'])}" for _, s in models]
        lines.append(f"| {b['lo']:g}-{b['hi']:g} | {b['n']:,} | " + " | ".join(cells) + " |")
    return lines


def _lenses(lz: dict[str, Any]) -> list[str]:
    k = lz["recall_k"]
    ks = [x for x in ("10", "50", "100") if x in lz["rankers"][lz["headline_ranker"]]["precision_at_k"]]
    lines = [
        f"{lz['n_seeds']} seed lenses (drawn with the seed) out of {lz['n_lenses']:,}; the other "
        f"{lz['n_positive_evaluated']:,} are to be found among {lz['n_evaluated']:,} objects (positive rate "
        f"{lz['positive_rate']:.4f}, the AUPRC of a random ranking). Seeds are left out of every metric.",
        "",
        f"| ranker | recall@{k} (most possible) | " + " | ".join(f"P@{x}" for x in ks) + " | R-precision | AUPRC |",
        "|---|---:|" + "---:|" * len(ks) + "---:|---:|",
    ]
    for name, r in lz["rankers"].items():
        lines.append(
            f"| {name} | {_f(r[f'recall_at_{k}'])} ({_f(r[f'recall_at_{k}_ceiling'])}) | "
            + " | ".join(_f(r["precision_at_k"][x]) for x in ks)
            + f" | {_f(r['r_precision'])} | {_f(r['auprc'])} |"
        )
    return lines


def _anomalies(a: dict[str, Any]) -> list[str]:
    lines = _anomaly_table(a)
    for name, other in a.get("other_scores", {}).items():
        lines += ["", f"**The {name} score** (`/rankings/{name}s`)" if name == "artifact" else
                  f"**The {name} score** (`/rankings/{name}`)", "", *_anomaly_table(other)]
    return lines


def _anomaly_table(a: dict[str, Any]) -> list[str]:
    top = a["top_k"]
    lines = [
        f"Score: {a['score'] or 'the version anomaly score'}. Rare classes: {', '.join(a['rare_classes'])}. "
        "Artifacts and rare classes are each scored against the ordinary objects; `combined` ranks the "
        "whole survey.",
        "",
        f"| positives | AUROC | precision@{top} | n positive | n negative |",
        "|---|---:|---:|---:|---:|",
    ]
    for group in ("sets", "per_artifact_kind", "per_class"):
        for name, s in a[group].items():
            label = (
                name if group == "sets" else (f"artifact: {name}" if group == "per_artifact_kind" else f"class: {name}")
            )
            lines.append(
                f"| {label} | {_f(s['auroc'])} | {_f(s[f'precision_at_{top}'])} | {s['n_positive']:,} | "
                f"{s['n_negative']:,} |"
            )
    return lines


def _retrieval(r: dict[str, Any]) -> list[str]:
    p, m, c = r["precision"], r["map"], r["augmented_copy"]
    k = c["top_k"]
    lines = [
        f"Same-class precision@{p['k']} through the version's index: **{_f(p['overall'])}** over "
        f"{p['n_queries']:,} queries (not {', '.join(p['excluded_query_classes'])}). mAP over the whole ranking: "
        f"**{_f(m['map'])}** ({m['n_queries']:,} sampled queries). A rotated, flipped, re-noised copy finds its "
        f"original in the top {k} for **{_f(c[f'found_in_top_{k}'])}** of {c['n']:,} objects (exact nearest: "
        f"{_f(c['top_1_exact'])}, median rank {c['median_rank_exact']:g}).",
        "",
        f"| class | precision@{p['k']} | mAP |",
        "|---|---:|---:|",
    ]
    for cls, v in p["per_class"].items():
        lines.append(f"| {cls} | {_f(v)} | {_f(m['per_class'].get(cls))} |")
    return lines


def _finetune(section: dict[str, Any]) -> list[str]:
    from .finetune_table import table

    return table(section)


def render(report: dict[str, Any], docs_path: Path, what_tried: str | None = None) -> str:
    v, t = report["version"], report["tasks"]
    enc = v["encoder"]
    lines = [
        "# Science evaluation",
        "",
        f"<!-- generated by evaluation/science_doc.py from report.json ({report['created']}); do not edit by hand -->",
        "",
        f"Version `{v['version']}` ({v['n_objects']:,} objects, {v['embedding_dim']}-d embeddings, index "
        f"`{v['index']['factory']}`), encoder `{enc['backbone']}` {enc['weights_sha256'][:12]} made by "
        f"`{enc['produced_by'] or 'unknown'}`; survey `{v['survey'].get('path', '')}`. Git {report['git_sha']}; "
        f"split seed {report['splits']['seed']}: {report['splits']['train']:,} train / {report['splits']['val']:,} "
        f"validation / {report['splits']['test']:,} test objects. The whole evaluation took "
        f"{report['seconds'] / 60:.1f} min.",
        "",
        f"Command: `{report['command'] or 'skysift evaluate'}`",
        "",
        "## Targets (issues #9 and #14)",
        "",
        *_targets(report),
        "",
    ]
    sections = [
        (
            "morphology",
            "Morphology: linear probe vs supervised CNN",
            _morphology,
            "label_efficiency",
            "Label efficiency: test score against the fraction of labelled training objects",
        ),
        (
            "photoz",
            "Photometric redshift",
            _photoz,
            "photoz_scatter",
            "Photo-z of the test galaxies; dotted lines |dz| = 0.05 (1 + z)",
        ),
        (
            "lenses",
            f"Strong lenses from {t['lenses']['n_seeds']} labels" if "lenses" in t else "",
            _lenses,
            "lens_precision_recall",
            "Lens search: precision-recall and precision@k of each ranker",
        ),
        ("anomalies", "Anomalies", _anomalies, "anomaly_roc", "ROC of the anomaly score"),
        (
            "finetune",
            "Label efficiency: frozen probe vs fine-tuned SSL vs from scratch",
            _finetune,
            "",
            "",
        ),
        (
            "retrieval",
            "Retrieval",
            _retrieval,
            "gallery",
            "Test queries (left) and their nearest neighbours; green = same class, red = another",
        ),
    ]
    for key, title, fn, fig, caption in sections:
        if key in t:
            lines += [f"## {title}", "", *fn(t[key]), "", *_figure(report, fig, docs_path, caption)]
    lines += [
        "## What was tried",
        "",
        TRIED_BEGIN,
        (what_tried or "").strip() or NOTHING_TRIED,
        TRIED_END,
        "",
        "## Definitions",
        "",
        "- Splits: one seeded train / validation / test split of all objects serves every task; models fit on "
        "train, choose hyper-parameters (probe C, kNN k) on validation, and are scored on test. Label fractions are "
        "nested class-stratified subsets of the train objects. The self-supervised encoder saw every object's pixels "
        "(no labels) during pretraining, as a survey's own encoder would.",
        "- Morphology: the probe is multinomial logistic regression on standardised frozen embeddings; the CNN is "
        "the encoder's own backbone trained from scratch on the same labelled rows (small label sets train for more "
        "epochs, up to `cnn_min_steps` optimiser steps). The targets compare macro-F1 (the classes are unbalanced); "
        "accuracy is in the tables. The label fraction at which the probe reaches the CNN's 100%-label score is "
        "interpolated in log fraction between the measured points.",
        "- Lenses: the classifier is positive-unlabelled logistic regression (seeds vs random unlabelled objects, "
        "cross-fitted so no object is scored by a model that used it as a negative); `similarity_max` / "
        "`similarity_mean` rank by cosine similarity to the nearest seed / the seeds' mean; `service_blend` is the "
        "score the service ranks by. recall@100 cannot exceed 100 / (lenses to find).",
        "- Anomalies: positives are injected artifacts (`artifact_kind` set) and the rare classes named above; each "
        "kind is scored against the ordinary objects (neither kind), `combined` against everything.",
        "- Label efficiency (issue #14): at each label fraction the frozen linear probe (logistic regression for "
        "morphology, ridge regression for photo-z, on the published embeddings), the fine-tuned encoder and the same "
        "architecture from random weights see the same labelled train objects; the two networks share head, "
        "schedule, rotation/flip augmentation and early stopping on the validation objects (training/finetune.py).",
        "- Photo-z (Hayat et al. 2021): dz = (z_phot - z)/(1 + z); sigma_MAD = 1.4826 median(|dz - median(dz)|); "
        "outlier fraction eta = fraction with |dz| > 0.05; bias = median(dz).",
        "- Rankings: precision@k = positives among the top k; recall@k = share of all positives in the top k; AUPRC "
        "= average precision (step sum over distinct scores); AUROC = probability a random positive outscores a "
        "random negative (ties count half).",
        "- Retrieval: precision@k excludes the query itself; mAP averages, over queries, the precision at the rank of "
        "each same-class object in the full similarity ranking.",
        "",
    ]
    return "\n".join(lines)


def write_doc(report: dict[str, Any], docs_path: Path, what_tried: Path | None = None) -> Path:
    text = Path(what_tried).read_text() if what_tried is not None else None
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    docs_path.write_text(render(report, docs_path, text))
    return docs_path
