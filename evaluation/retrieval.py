"""Retrieval quality: same-class precision@k from a published version's own index."""

from __future__ import annotations

import numpy as np

from indexer import index_types
from indexer.store import IndexedSurvey


def same_class_precision(store: IndexedSurvey, k: int = 10, label_column: str = "class",
                         exclude: tuple[str, ...] = ("star",)) -> dict[str, float]:
    """Same-class precision@k over every object whose label is not excluded (self not counted),
    overall and per class. Neighbours may be of any class, stars included."""
    labels = np.asarray(store.catalog[label_column]).astype(str)
    vec = np.asarray(store.embeddings, dtype=np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True).clip(1e-12)
    queries = np.nonzero(~np.isin(labels, exclude))[0]
    ids = np.concatenate([index_types.search(store.index, vec[queries[i : i + 4096]], k + 1)[1]
                          for i in range(0, len(queries), 4096)])
    # Drop the query itself wherever it appears (ties can put it off column 0).
    nn = np.array([[j for j in row if j != q][:k] for q, row in zip(queries, ids, strict=True)])
    prec = (labels[nn] == labels[queries, None]).mean(axis=1)
    out = {"precision_at_k": float(prec.mean()), "k": k, "n_queries": int(len(queries))}
    for c in np.unique(labels[queries]):
        out[f"precision_at_k[{c}]"] = float(prec[labels[queries] == c].mean())
    return out
