"""Training curves from a run's metrics.jsonl: the MoCo loss and the kNN monitor, as PNGs.

    skysift training-plots runs/demo/metrics.jsonl --out docs/img --queue-size 4096

writes `<out>/training_loss.png` and `<out>/training_knn.png`. Needs matplotlib (not a runtime
dependency of skysift; `pip install matplotlib`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(loss records, kNN-monitor records), each sorted by step; a later record for a step wins."""
    loss: dict[int, dict[str, Any]] = {}
    knn: dict[int, dict[str, Any]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            (loss if "loss" in rec else knn)[rec["step"]] = rec
    return [loss[k] for k in sorted(loss)], [knn[k] for k in sorted(knn)]


def plot(metrics: Path, out_dir: Path, title_prefix: str = "", queue_size: int | None = None) -> list[Path]:
    """queue_size: draw log(1 + K), the loss of logits that cannot tell the positive from K negatives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss, knn = read_metrics(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot([r["step"] for r in loss], [r["loss"] for r in loss], lw=1.5, label="InfoNCE loss (mean over ranks)")
    if queue_size:
        ax.axhline(math.log(1 + queue_size), color="tab:red", lw=1, ls=":", label=f"log(1 + K), K = {queue_size}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot([r["step"] for r in loss], [r["lr"] for r in loss], color="tab:gray", lw=1, ls="--", label="learning rate")
    ax2.set_ylabel("learning rate", color="tab:gray")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize=8)
    ax.set_title(title_prefix + "MoCo v2 training loss")
    fig.tight_layout()
    written.append(out_dir / "training_loss.png")
    fig.savefig(written[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    ax.plot([r["step"] for r in knn], [r["knn_precision_at_10"] for r in knn], marker="o", lw=1.5)
    for r in knn:
        ax.annotate(f"{r['knn_precision_at_10']:.3f}", (r["step"], r["knn_precision_at_10"]),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("step (a point per epoch end)")
    ax.set_ylabel("same-class precision@10")
    ax.grid(alpha=0.3)
    ax.set_title(title_prefix + "kNN monitor, same-class precision@10")
    fig.tight_layout()
    written.append(out_dir / "training_knn.png")
    fig.savefig(written[-1])
    plt.close(fig)
    return written
