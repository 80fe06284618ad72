"""How well a representation groups labelled objects: the kNN monitor run during training, and
the trained-vs-random-weights comparison of a finished encoder (bench/precision_vs_random.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.model import Encoder
from encoder.weights import build_encoder, load_encoder


def nearest_neighbours(embeddings: torch.Tensor, queries: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Brute-force cosine top-k of each query row among all rows, the query itself excluded.

    embeddings (N, D) L2-normalised; queries (Q,) row indices -> (Q, min(k, N - 1)) row indices,
    nearest first.
    """
    k = min(k, len(embeddings) - 1)
    out = []
    for start in range(0, len(queries), chunk):
        q = torch.as_tensor(queries[start : start + chunk], dtype=torch.long)
        sims = embeddings[q] @ embeddings.T  # (chunk, N)
        sims[torch.arange(len(q)), q] = -float("inf")
        out.append(sims.topk(k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, k), dtype=np.int64)


def same_class_precision(embeddings: torch.Tensor, labels: np.ndarray, k: int = 10,
                         queries: np.ndarray | None = None) -> float:
    """Mean fraction of each query's k nearest neighbours (cosine, self excluded) sharing its label.

    queries: row indices (default every row); neighbours are drawn from all rows.
    """
    queries = np.arange(len(labels)) if queries is None else queries
    nn_idx = nearest_neighbours(embeddings, queries, k)
    return float((labels[nn_idx] == labels[queries, None]).mean())


def knn_monitor(encoder: Encoder, card: ModelCard, images: np.ndarray, labels: np.ndarray,
                device: torch.device, k: int = 10) -> float:
    was_training = encoder.training
    encoder.eval()
    emb = torch.from_numpy(embed_array(encoder, card, images, device=device))
    encoder.train(was_training)
    return same_class_precision(emb, labels, k)


def precision_report(embeddings: torch.Tensor, labels: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    """Same-class precision@k over `queries`, overall and per class."""
    nn_idx = nearest_neighbours(embeddings, queries, k)
    hit = (labels[nn_idx] == labels[queries, None]).mean(axis=1)
    out: dict[str, Any] = {"precision_at_k": float(hit.mean()), "per_class": {}}
    for c in np.unique(labels[queries]):
        sel = labels[queries] == c
        out["per_class"][str(c)] = {"n": int(sel.sum()), "precision_at_k": float(hit[sel].mean())}
    return out


def precision_vs_random(encoder_dir: Path, images: np.ndarray, labels: np.ndarray, k: int = 10,
                        exclude: Sequence[str] = ("star",), device: str | torch.device = "cpu",
                        seed: int = 0) -> dict[str, Any]:
    """Same-class precision@k of a trained encoder against the same architecture with random weights.

    images (N, C, H, W) linear flux of the whole survey, labels (N,) classes. Queries are the
    objects whose label is not in `exclude` (galaxies: stars excluded); neighbours come from all
    objects, stars included, brute-force cosine on the L2-normalised backbone output, self
    excluded. Both encoders use the trained card's preprocessing, so only the weights differ.
    `chance` is what neighbours drawn at random would score: mean over queries of
    (n_class - 1) / (N - 1).
    """
    labels = np.asarray(labels).astype(str)
    queries = np.nonzero(~np.isin(labels, list(exclude)))[0]
    trained, card = load_encoder(encoder_dir, device)
    torch.manual_seed(seed)
    random = build_encoder(card).to(device).eval()
    counts = {c: int((labels == c).sum()) for c in np.unique(labels)}
    chance = float(np.mean([(counts[c] - 1) / (len(labels) - 1) for c in labels[queries]]))
    out: dict[str, Any] = {"k": k, "n_objects": int(len(labels)), "n_queries": int(len(queries)),
                           "excluded_classes": list(exclude), "chance": chance}
    for name, enc in (("trained", trained), ("random_weights", random)):
        emb = torch.from_numpy(embed_array(enc, card, images, device=device))
        out[name] = precision_report(emb, labels, queries, k)
    return out
