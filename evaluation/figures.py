"""The report's figures, drawn from its JSON sections (plus per-object photo-z predictions and the
version's cutouts for the gallery). `matplotlib.figure.Figure` renders with the Agg canvas and
never touches pyplot's global state, so this works headless and inside a server or a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from indexer.store import IndexedSurvey
from survey.render import to_rgb

from .metrics import OUTLIER_DZ

DPI = 90


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def label_efficiency(morph: dict[str, Any], path: Path) -> Path:
    """Probe and CNN score vs label fraction (log x), one panel per metric."""
    fig = Figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), ("macro_f1", "accuracy"), strict=True):
        probe, cnn = morph["probe"], morph["supervised"]
        ax.plot([p["fraction"] * 100 for p in probe], [p[metric] for p in probe], "o-", label="linear probe (frozen)")
        if cnn:
            ax.plot([p["fraction"] * 100 for p in cnn], [p[metric] for p in cnn], "s--", label="supervised CNN")
            full = next((p for p in cnn if p["fraction"] == 1.0), None)
            if full:
                ax.axhline(full[metric], color="C1", lw=0.8, ls=":", label="CNN at 100%")
        ax.axhline(morph["chance"][metric], color="grey", lw=0.8, ls=":", label=f"always {morph['chance']['predict']}")
        ax.set_xscale("log")
        ax.set(
            xlabel="labelled training objects (%)",
            ylabel=f"test {metric}",
            ylim=(0, 1),
            title=f"morphology ({len(morph['classes'])} classes): {metric}",
        )
        ax.legend(fontsize=8)
    return _save(fig, path)


def photoz_scatter(photoz: dict[str, Any], preds: dict[str, np.ndarray], path: Path) -> Path:
    """Predicted vs true z for kNN (and the CNN), with the |dz| = 0.05 outlier lines."""
    models = [m for m in ("knn", "supervised") if m in preds]
    fig = Figure(figsize=(5 * len(models), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    z = preds["z_true"]
    hi = max(0.5, float(np.quantile(z, 0.995)) * 1.05) if len(z) else 1.0
    line = np.array([0.0, hi])
    for ax, m in zip(axes, models, strict=True):
        o = photoz[m]["overall"]
        ax.scatter(z, preds[m], s=4, alpha=0.4)
        ax.plot(line, line, "k-", lw=0.8)
        for s in (-1, 1):
            ax.plot(line, line + s * OUTLIER_DZ * (1 + line), "k:", lw=0.8)
        name = f"kNN (k={photoz['knn']['k']}) on embeddings" if m == "knn" else "supervised CNN"
        ax.set(
            xlim=(0, hi),
            ylim=(0, hi),
            aspect="equal",
            xlabel="true z",
            ylabel="predicted z",
            title=f"{name}\nsigma_MAD {o['sigma_mad']:.4f}, eta {o['outlier_fraction']:.3f}, bias {o['bias']:+.4f}",
        )
    return _save(fig, path)


def lens_precision_recall(lenses: dict[str, Any], path: Path) -> Path:
    """Precision-recall curve and precision@k of every lens ranker."""
    fig = Figure(figsize=(10, 4))
    ax_pr, ax_k = fig.subplots(1, 2)
    for name, r in lenses["rankers"].items():
        ax_pr.plot(r["pr_curve"]["recall"], r["pr_curve"]["precision"], label=f"{name} (AUPRC {r['auprc']:.3f})")
        ks = [int(k) for k in r["precision_at_k"]]
        ax_k.plot(ks, list(r["precision_at_k"].values()), "o-", label=name)
    ax_pr.axhline(lenses["positive_rate"], color="grey", lw=0.8, ls=":", label="random")
    ax_pr.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"lenses from {lenses['n_seeds']} seeds ({lenses['n_positive_evaluated']} to find)",
    )
    ax_k.set_xscale("log")
    ax_k.set(xlabel="k (top of the ranking)", ylabel="precision@k", ylim=(0, 1.02), title="precision@k")
    ax_pr.legend(fontsize=7)
    ax_k.legend(fontsize=7)
    return _save(fig, path)


def anomaly_roc(anomalies: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(5, 4.6))
    ax = fig.subplots()
    for name, s in anomalies["sets"].items():
        if s.get("roc_curve"):
            ax.plot(
                s["roc_curve"]["fpr"],
                s["roc_curve"]["tpr"],
                label=f"{name} (AUROC {s['auroc']:.3f}, n={s['n_positive']})",
            )
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        aspect="equal",
        title="anomaly score: artifacts and rare classes",
    )
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def gallery(store: IndexedSurvey, query_rows: np.ndarray, neighbours: int, path: Path) -> dict[str, Any]:
    """One row per query: the query, then its nearest neighbours from the version's index, each
    titled with its true class (green = same as the query). Returns what it showed."""
    classes = np.asarray(store.catalog["class"]).astype(str)
    rows_shown = []
    for q in query_rows:
        nn = [n.row for n in store.similar(str(store.catalog["object_id"][q]), neighbours + 1) if n.row != q]
        rows_shown.append([int(q), *nn[:neighbours]])
    cols = neighbours + 1
    fig = Figure(figsize=(1.3 * cols, 1.45 * len(rows_shown)))
    axes = np.atleast_2d(fig.subplots(len(rows_shown), cols, squeeze=False))
    for i, rows in enumerate(rows_shown):
        stamps = store.images(np.asarray(rows))
        for j in range(cols):
            ax = axes[i, j]
            ax.set_axis_off()
            if j >= len(rows):
                continue
            ax.imshow(to_rgb(stamps[j], store.bands))
            same = classes[rows[j]] == classes[rows[0]]
            ax.set_title(
                ("query: " if j == 0 else "") + classes[rows[j]],
                fontsize=7,
                color="black" if j == 0 else ("green" if same else "red"),
            )
    _save(fig, path)
    return {
        "queries": [str(store.catalog["object_id"][r[0]]) for r in rows_shown],
        "neighbours": [[str(store.catalog["object_id"][x]) for x in r[1:]] for r in rows_shown],
    }
