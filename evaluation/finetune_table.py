"""The probe / fine-tuned / from-scratch comparison (evaluation.finetune_compare) as Markdown.

Kept apart from the comparison so that re-rendering docs/science.md from report.json
(evaluation.science_doc) imports no torch.
"""

from __future__ import annotations

from typing import Any

METHODS = ("probe", "finetuned", "scratch")


def table(section: dict[str, Any]) -> list[str]:
    """Markdown: one table per task, a row per label fraction, a column per method."""
    lines: list[str] = []
    f = section.get("fit", {})
    lines += [
        f"Fine-tuned and from-scratch models: the encoder's architecture with a {f.get('head', 'linear')} head, "
        f"at most {f.get('epochs')} epochs (at least {f.get('min_steps')} steps), the first "
        f"{f.get('freeze_epochs')} head-only (fine-tuned only: its backbone frozen), early stopping after "
        f"{f.get('patience')} epochs without a better validation score.",
        "",
    ]
    for task, title in (
        ("morphology", "Morphology (macro-F1, higher is better)"),
        ("photoz", "Photo-z (sigma_MAD of dz/(1+z), lower is better)"),
    ):
        s = section.get(task)
        if not s:
            continue
        key = s["metric"]
        lines += [
            f"**{title}**: {s['n_train']:,} train, {s['n_val']:,} validation, {s['n_test']:,} test objects.",
            "",
            "| labels | n | frozen linear probe | fine-tuned SSL | from scratch | best |",
            "|---:|---:|---:|---:|---:|:-:|",
        ]
        for p in s["points"]:
            vals = {m: p[m][key] for m in METHODS}
            pick = max(vals, key=vals.get) if s["higher_is_better"] else min(vals, key=vals.get)  # type: ignore[arg-type]
            lines.append(
                f"| {p['fraction'] * 100:g}% | {p['n_labels']:,} | {vals['probe']:.4f} | "
                f"{vals['finetuned']:.4f} | {vals['scratch']:.4f} | {pick} |"
            )
        lines.append("")
    return lines
