"""The must-show targets of issues #9 and #14 (the `finetune` task's), read off a report's task sections.

Each target is a row {id, task, claim, metric, value, target, direction, met, shortfall, note}:
`direction` ">=" means value must be at least target; `shortfall` is how far the value is from
the target on the wrong side (0 when met); `met` and `shortfall` are None when the task or the
point the target needs was not measured (e.g. `--no-supervised`), with the reason in `note`.
"""

from __future__ import annotations

from typing import Any

# The fixed thresholds of the issue; the comparison targets take their value from the CNN.
LENS_RECALL_MIN = 0.9
ANOMALY_AUROC_MIN = 0.95
PRECISION_AT_10_MIN = 0.9
REACH_FRACTION_MAX = 0.25
FT_REACH_FRACTION_MAX = 0.5  # issue #14: fine-tuned SSL reaches from-scratch's 100%-label score with <= 50%
PROBE_GAP_MAX = 0.03  # issue #14: the frozen probe at 10% within 0.03 of from scratch


def _row(
    id_: str,
    task: str,
    claim: str,
    metric: str,
    value: float | None,
    target: float | None,
    direction: str,
    note: str = "",
) -> dict[str, Any]:
    met = shortfall = None
    if value is not None and target is not None:
        gap = (target - value) if direction == ">=" else (value - target)
        met, shortfall = bool(gap <= 0), max(0.0, float(gap))
    elif not note:
        note = "not measured"
    return {
        "id": id_,
        "task": task,
        "claim": claim,
        "metric": metric,
        "value": value,
        "target": target,
        "direction": direction,
        "met": met,
        "shortfall": shortfall,
        "note": note,
    }


def _at(points: list[dict[str, Any]], fraction: float) -> dict[str, Any] | None:
    return next((p for p in points if abs(p["fraction"] - fraction) < 1e-12), None)


def finetune_targets(ft: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue #14's comparisons of the fine-tuned SSL encoder with the same architecture from scratch."""
    from .metrics import reach_fraction

    rows = []
    morph = (ft or {}).get("morphology")
    pz = (ft or {}).get("photoz")
    pts = morph["points"] if morph else []
    for f in (0.01, 0.1):
        p = _at(pts, f)
        rows.append(_row(f"finetuned_ge_scratch_{round(f * 100)}pct", "finetune",
                         f"fine-tuned SSL >= from scratch at {f:.0%} of the labels", "macro_f1 (test)",
                         p["finetuned"]["macro_f1"] if p else None, p["scratch"]["macro_f1"] if p else None, ">=",
                         "" if p else "not measured at this fraction (--finetune-fractions)"))
    full = _at(pts, 1.0)
    interp, metric, note = None, "label fraction", "not measured at 100% of the labels"
    if full is not None:
        target = full["scratch"]["macro_f1"]
        interp, _ = reach_fraction([p["fraction"] for p in pts], [p["finetuned"]["macro_f1"] for p in pts], target)
        metric = "label fraction (interpolated)"
        note = "" if interp is not None else f"never reached: from scratch scores {target:.3f} at 100%"
    rows.append(_row("finetuned_reaches_scratch_full_le_50pct", "finetune",
                     "fine-tuned SSL reaches the from-scratch 100%-label macro-F1 with <= 50% of the labels", metric,
                     interp, FT_REACH_FRACTION_MAX, "<=", note))
    if full is not None and interp is None:
        rows[-1].update(met=False)
    for f in (0.1, 1.0):
        p = _at(pz["points"], f) if pz else None
        rows.append(_row(f"finetuned_photoz_le_scratch_{round(f * 100)}pct", "finetune",
                         f"fine-tuned SSL photo-z sigma_MAD <= from scratch at {f:.0%} of the labels",
                         "sigma_MAD (test galaxies)", p["finetuned"]["sigma_mad"] if p else None,
                         p["scratch"]["sigma_mad"] if p else None, "<=",
                         "" if p else "not measured (no z column, or not at this fraction)"))
    p = _at(pts, 0.1)
    rows.append(_row("probe_within_0.03_of_scratch_10pct", "finetune",
                     "frozen linear probe at 10% of the labels within 0.03 of from scratch", "macro_f1 (test)",
                     p["probe"]["macro_f1"] if p else None, p["scratch"]["macro_f1"] - PROBE_GAP_MAX if p else None,
                     ">=", "" if p else "not measured at this fraction (--finetune-fractions)"))
    return rows


def evaluate_targets(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    m = tasks.get("morphology")
    for f in (0.01, 0.1):
        probe = _at(m["probe"], f) if m else None
        cnn = _at(m["supervised"], f) if m else None
        metric = m["headline_metric"] if m else "macro_f1"
        rows.append(_row(f"probe_ge_cnn_{round(f * 100)}pct", "morphology",
                         f"linear probe >= supervised CNN at {f:.0%} of the labels", f"{metric} (test)",
                         probe[metric] if probe else None, cnn[metric] if cnn else None, ">=",
                         "" if (probe and cnn) else "probe or CNN not measured at this fraction"))
    reach = (m or {}).get("probe_reaches_supervised_full")
    never = reach is not None and reach["fraction"] is None
    note = ""
    if never:
        best = max(p[reach["metric"]] for p in m["probe"])
        note = (f"never reached: best probe {reach['metric']} {best:.3f} vs the CNN's "
                f"{reach['supervised_full_score']:.3f} at 100% (short by {reach['supervised_full_score'] - best:.3f})")
    rows.append(_row("probe_reaches_cnn_full_le_25pct", "morphology",
                     "probe reaches the supervised 100%-label score with <= 25% of the labels",
                     "label fraction" if never else "label fraction (interpolated)",
                     reach["fraction"] if reach else None, REACH_FRACTION_MAX, "<=", note))
    if never:
        rows[-1].update(met=False)
    p = tasks.get("photoz")
    rows.append(_row("photoz_sigma_mad_le_cnn", "photoz", "kNN photo-z sigma_MAD <= the supervised CNN's",
                     "sigma_MAD (test galaxies)", p["knn"]["overall"]["sigma_mad"] if p else None,
                     p["supervised"]["overall"]["sigma_mad"] if p and "supervised" in p else None, "<="))
    lens = tasks.get("lenses")
    if lens:
        r = lens["rankers"][lens["headline_ranker"]]
        k = lens["recall_k"]
        ceiling = r[f"recall_at_{k}_ceiling"]
        note = (f"at most {ceiling:.3f} is possible: {lens['n_positive_evaluated']} lenses to find in a top {k}"
                if ceiling < LENS_RECALL_MIN else "")
        rows.append(_row("lens_recall_at_100", "lenses", f"lens recall@{k} >= 0.9 with {lens['n_seeds']} labels",
                         f"recall@{k} ({lens['headline_ranker']})", r[f"recall_at_{k}"], LENS_RECALL_MIN, ">=",
                         note))
    else:
        rows.append(_row("lens_recall_at_100", "lenses", "lens recall@100 >= 0.9 with 20 labels", "recall@100", None,
                         LENS_RECALL_MIN, ">="))
    a = tasks.get("anomalies")
    rows.append(_row("anomaly_auroc", "anomalies", "anomaly AUROC >= 0.95 (artifacts + rare classes)",
                     "AUROC (combined)", a["sets"]["combined"]["auroc"] if a else None, ANOMALY_AUROC_MIN, ">="))
    r = tasks.get("retrieval")
    rows.append(_row("same_class_precision_at_10", "retrieval", "same-class precision@10 >= 0.9",
                     f"precision@{r['precision']['k']}" if r else "precision@10",
                     r["precision"]["overall"] if r else None, PRECISION_AT_10_MIN, ">="))
    rows += finetune_targets(tasks.get("finetune"))
    return rows
