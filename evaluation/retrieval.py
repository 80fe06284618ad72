"""Retrieval quality from a published version: what an astronomer gets back when asking for
"more like this one".

* `same_class_precision`: same-class precision@k through the version's own index (the answers
  the service gives, approximate index included), overall and per class.
* `same_class_map`: mean average precision of same-class retrieval over the whole ranked survey,
  by exact cosine, for a seeded sample of queries: precision@10 looks at the first page only,
  mAP at the whole ranking.
* `augmented_copy_search`: a rotated, flipped, re-noised copy of an object, embedded by the
  version's encoder, must find its original among the top k (STYLE.md §7). The copy is what a
  second exposure of the same galaxy at another position angle and depth looks like; an encoder
  that does not map it next to the original cannot be trusted with "more like this".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.model import Encoder
from indexer.store import IndexedSurvey
from training.augment import AugmentSettings, augment
from training.data import Conditions, border_noise_sigma

from .metrics import ranked_average_precision


def unit_vectors(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) float32, each row re-normalised (the artifact stores float16 unit vectors)."""
    vec = np.asarray(embeddings, dtype=np.float32)
    return vec / np.linalg.norm(vec, axis=1, keepdims=True).clip(1e-12)


def same_class_precision(
    store: IndexedSurvey, k: int = 10, label_column: str = "class", exclude: tuple[str, ...] = ("star",)
) -> dict[str, float]:
    """Same-class precision@k over every object whose label is not excluded (self not counted),
    overall and per class. Neighbours may be of any class, stars included."""
    labels = np.asarray(store.catalog[label_column]).astype(str)
    vec = unit_vectors(store.embeddings)
    queries = np.nonzero(~np.isin(labels, exclude))[0]
    ids = np.concatenate(
        [store.search_batch(vec[queries[i : i + 4096]], k + 1)[1] for i in range(0, len(queries), 4096)]
    )
    # Drop the query itself wherever it appears (ties can put it off column 0).
    nn = np.array([[j for j in row if j != q][:k] for q, row in zip(queries, ids, strict=True)])
    prec = (labels[nn] == labels[queries, None]).mean(axis=1)
    out = {"precision_at_k": float(prec.mean()), "k": k, "n_queries": int(len(queries))}
    for c in np.unique(labels[queries]):
        out[f"precision_at_k[{c}]"] = float(prec[labels[queries] == c].mean())
    return out


def same_class_map(vectors: np.ndarray, labels: np.ndarray, query_rows: np.ndarray, block: int = 64) -> dict[str, Any]:
    """Mean average precision of same-class retrieval: each query ranks every other object by
    cosine similarity (exact; vectors (N, D) unit rows); relevant = same label. Per class too."""
    labels = np.asarray(labels).astype(str)
    vectors = np.asarray(vectors, dtype=np.float32)
    counts = {c: int(n) for c, n in zip(*np.unique(labels, return_counts=True), strict=True)}
    ap = np.empty(len(query_rows))
    for start in range(0, len(query_rows), block):
        q = np.asarray(query_rows[start : start + block])
        sims = vectors[q] @ vectors.T  # (B, N)
        sims[np.arange(len(q)), q] = -np.inf  # the query itself is not a result
        order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]  # self last, dropped
        relevant = labels[order] == labels[q][:, None]
        n_rel = np.array([counts[c] - 1 for c in labels[q]])
        ap[start : start + len(q)] = ranked_average_precision(relevant, n_rel)
    qlab = labels[query_rows]
    per_class = {
        c: float(np.nanmean(ap[qlab == c])) for c in sorted(set(qlab.tolist())) if np.isfinite(ap[qlab == c]).any()
    }
    return {
        "map": float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan"),
        "n_queries": int(len(query_rows)),
        "per_class": per_class,
    }


def copy_augment_settings(input_size_px: int, noise_max_factor: float) -> AugmentSettings:
    """Rotation U(0, 360) deg, a flip with p = 0.5, fresh noise up to `noise_max_factor` x the sky
    sigma; no rescale, shift, dust or blur, so the copy is the same galaxy seen again."""
    return AugmentSettings(crop_size_px=input_size_px, max_shift_px=0.0, scale_min=1.0, scale_max=1.0, rotate=True,
                           flip=True, redden=False, blur=False, noise=True, noise_max_factor=noise_max_factor)


def augmented_copy_search(
    store: IndexedSurvey,
    encoder: Encoder,
    card: ModelCard,
    rows: np.ndarray,
    *,
    top_k: int,
    seed: int,
    noise_max_factor: float = 1.5,
    device: str = "cpu",
    batch_size: int = 256,
    classes: np.ndarray | None = None,
) -> dict[str, Any]:
    """Embed an augmented copy of each row's cutout, search the version's index, and report the
    fraction whose original is in the top_k (the index's answer) and the original's exact rank.
    With `classes` (one label per row of the version) the fraction is also given per class of the
    copied object: which kinds of galaxy have look-alikes close enough to push a copy out."""
    settings = copy_augment_settings(card.preprocess.input_size_px, noise_max_factor)
    cond = Conditions(store.survey)
    vec = unit_vectors(store.embeddings)
    g = torch.Generator().manual_seed(seed)
    found, ranks = [], []
    for start in range(0, len(rows), batch_size):
        r = np.asarray(rows[start : start + batch_size], dtype=np.int64)
        images = store.images(r)
        noise = cond.noise[r] if cond.noise is not None else border_noise_sigma(images)
        views = augment(
            torch.from_numpy(images),
            ebv=torch.from_numpy(cond.ebv[r]),
            psf_fwhm_arcsec=torch.from_numpy(cond.fwhm[r]),
            noise_sigma=torch.as_tensor(noise, dtype=torch.float32),
            coeffs=torch.zeros(len(store.bands)),
            pixel_scale_arcsec=store.pixel_scale_arcsec,
            settings=settings,
            generator=g,
        )
        q = embed_array(encoder, card, views.numpy(), device=device)
        ids = store.search_batch(q, top_k)[1]
        found.append((ids == r[:, None]).any(axis=1))
        sims = q @ vec.T  # (B, N)
        ranks.append((sims > sims[np.arange(len(r)), r][:, None]).sum(axis=1))  # 0 = nearest
    hit, rank = np.concatenate(found), np.concatenate(ranks)
    out: dict[str, Any] = {
        "n": int(len(rows)),
        "top_k": top_k,
        f"found_in_top_{top_k}": float(hit.mean()),
        "top_1_exact": float(np.mean(rank == 0)),
        "median_rank_exact": float(np.median(rank)),
        "augmentation": settings.model_dump(mode="json"),
        "seed": seed,
    }
    if classes is not None:
        of = np.asarray(classes)[np.asarray(rows, dtype=np.int64)]
        out["per_class"] = {str(c): {"n": int((of == c).sum()), f"found_in_top_{top_k}": float(hit[of == c].mean())}
                            for c in np.unique(of)}
    return out
