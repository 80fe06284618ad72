"""Photometric redshifts: kNN regression in embedding space vs the supervised CNN's regression head.

Hayat et al. 2021 show that redshift is carried by the self-supervised representation; the
simplest read-out is the neighbours' redshifts. kNN here: the k nearest train galaxies by cosine
similarity, predicting the median of their z (robust to the odd neighbour at another z, which
would otherwise drag the estimate and inflate the outlier fraction); k is chosen on the
validation galaxies by sigma_MAD. The CNN (same backbone as the encoder, from scratch) trains on
the same train galaxies' z. Both are scored on the test galaxies with Hayat et al.'s definitions
(`metrics.photoz_metrics`), overall and in bins of r magnitude, next to the trivial predictor
"always the training median z".

Galaxies only: stars have z = 0 and a lens's catalogued z is its deflector's while its pixels
mix in a source at another z (`exclude`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .metrics import photoz_by_bin, photoz_metrics
from .morphology import CNNRunner
from .splits import Split
from .supervised import Target


def knn_indices(train_x: np.ndarray, query_x: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    """(Q, k) rows of train_x with the highest dot product to each query (unit vectors: cosine),
    most similar first. Exact, in blocks of queries so memory stays at block x N_train."""
    train_x = np.asarray(train_x, dtype=np.float32)
    k = min(k, len(train_x))
    out = np.empty((len(query_x), k), dtype=np.int64)
    for start in range(0, len(query_x), block):
        sims = np.asarray(query_x[start : start + block], dtype=np.float32) @ train_x.T  # (B, N_train)
        top = (
            np.argpartition(-sims, k - 1, axis=1)[:, :k]
            if k < sims.shape[1]
            else np.tile(np.arange(sims.shape[1]), (len(sims), 1))
        )
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start : start + block] = np.take_along_axis(top, order, axis=1)
    return out


def knn_predict(
    train_x: np.ndarray, train_z: np.ndarray, query_x: np.ndarray, ks: Sequence[int]
) -> dict[int, np.ndarray]:
    """{k: (Q,) median z of the k nearest train objects} for every k, from one search."""
    nn = knn_indices(train_x, query_x, max(ks))
    z = np.asarray(train_z, dtype=np.float64)[nn]
    return {k: np.median(z[:, : min(k, nn.shape[1])], axis=1) for k in ks}


def _section(z_pred: np.ndarray, z_true: np.ndarray, mag: np.ndarray, edges: Sequence[float]) -> dict[str, Any]:
    return {"overall": photoz_metrics(z_pred, z_true), "by_mag": photoz_by_bin(z_pred, z_true, mag, edges)}


def run_photoz(
    embeddings: np.ndarray,
    z: np.ndarray,
    classes: np.ndarray,
    mag: np.ndarray,
    split: Split,
    *,
    ks: Sequence[int],
    mag_edges: Sequence[float],
    exclude: Sequence[str],
    cnn: CNNRunner | None,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Returns the JSON section and the per-object test predictions (for the scatter plot)."""
    z = np.asarray(z, dtype=np.float64)
    ok = np.isfinite(z) & ~np.isin(np.asarray(classes).astype(str), list(exclude))
    train, val, test = (rows[ok[rows]] for rows in (split.train, split.val, split.test))
    if not len(train) or not len(test):
        raise ValueError("photo-z needs galaxies with z in both the train and the test rows")
    x = np.asarray(embeddings, dtype=np.float32)
    ks = sorted({min(int(k), len(train)) for k in ks})
    if len(val):
        on_val = knn_predict(x[train], z[train], x[val], ks)
        val_sigma = {k: photoz_metrics(p, z[val])["sigma_mad"] for k, p in on_val.items()}
        best_k = min(ks, key=lambda k: (val_sigma[k], k))
    else:
        val_sigma, best_k = {}, ks[0]
    zp_knn = knn_predict(x[train], z[train], x[test], [best_k])[best_k]
    median = float(np.median(z[train]))
    out: dict[str, Any] = {
        "population": f"objects with finite z whose class is not one of {list(exclude)}",
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "n_test": int(len(test)),
        "mag_column_edges": [float(e) for e in mag_edges],
        "knn": {
            "k": best_k,
            "val_sigma_mad_by_k": {str(k): v for k, v in val_sigma.items()},
            "aggregate": "median",
            **_section(zp_knn, z[test], mag[test], mag_edges),
        },
        "baseline_median_z": {"predict": median, **_section(np.full(len(test), median), z[test], mag[test], mag_edges)},
    }
    preds = {"z_true": z[test], "knn": zp_knn, "mag": np.asarray(mag, dtype=np.float64)[test]}
    log(
        f"  kNN (k={best_k}): sigma_MAD {out['knn']['overall']['sigma_mad']:.4f}, "
        f"eta {out['knn']['overall']['outlier_fraction']:.3f}"
    )
    if cnn is not None:
        res, info = cnn(train, test, {"z": Target("photoz", np.where(ok, z, np.nan))})
        zp_cnn = res.predictions["z"]
        out["supervised"] = {**_section(zp_cnn, z[test], mag[test], mag_edges), **info}
        preds["supervised"] = zp_cnn
        log(
            f"  CNN: sigma_MAD {out['supervised']['overall']['sigma_mad']:.4f}, "
            f"eta {out['supervised']['overall']['outlier_fraction']:.3f}"
        )
    return out, preds
