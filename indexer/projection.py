"""A 2-D map of the embedding space for the explorer, computed once at index time (`map.npy`).

UMAP (McInnes et al. 2018, cosine metric) when umap-learn is installed, PCA otherwise. UMAP keeps
neighbourhoods, so clusters of similar galaxies stay together on the map; PCA only keeps the two
directions of largest variance, but it is exact, fast and needs nothing beyond numpy.

Costs (DESIGN.md §6): the first UMAP fit in a process spends ~1 min compiling numba code; 2x10^4
points then take ~6 s. Beyond `fit_max` objects the map is fitted on a seeded sample and the rest
are placed with the fitted model (`UMAP.transform`, or the PCA basis), so memory stays bounded.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Literal

import numpy as np

MapMethod = Literal["umap", "pca"]
UMAP_MIN_OBJECTS = 50  # below this, UMAP's spectral initialisation and kNN graph break down


def umap_available() -> bool:
    """True when umap-learn is installed (found without importing it: the import alone costs seconds)."""
    return importlib.util.find_spec("umap") is not None


def default_method() -> MapMethod:
    return "umap" if umap_available() else "pca"


def resolve_method(method: MapMethod, n: int, umap_min_objects: int = UMAP_MIN_OBJECTS) -> MapMethod:
    """The method that will actually run: PCA when UMAP is unavailable or there are too few objects."""
    if method not in ("umap", "pca"):
        raise ValueError(f"map method must be 'umap' or 'pca', got {method!r}")
    if method == "umap" and (not umap_available() or n < max(umap_min_objects, UMAP_MIN_OBJECTS)):
        return "pca"
    return method


def project_2d(embeddings: np.ndarray, method: MapMethod = "umap", seed: int = 0, *, fit_max: int = 200_000,
               n_neighbors: int = 15) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) float32 map coordinates, median-centred, scaled (both axes alike) to about [-1, 1].

    "umap" falls back to PCA when umap-learn is missing or N < UMAP_MIN_OBJECTS; call
    `resolve_method` first to know (and record) which one runs. Same input and seed, same map.
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    n = len(x)
    used = resolve_method(method, n)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=fit_max, replace=False)) if n > fit_max else None
    xy = _umap(x, fit_rows, seed, n_neighbors) if used == "umap" else _pca(x, fit_rows)
    xy = xy - np.median(xy, axis=0)
    scale = max(float(np.percentile(np.abs(xy), 99)), 1e-12)  # one scale for both axes: keep the aspect ratio
    return (xy / scale).astype(np.float32)


def _pca(x: np.ndarray, fit_rows: np.ndarray | None, block: int = 1 << 16) -> np.ndarray:
    """Project onto the top two principal axes (fitted on fit_rows, or all rows), in blocks."""
    fit = np.asarray(x if fit_rows is None else x[fit_rows], dtype=np.float64)
    mean = fit.mean(axis=0)
    if len(fit) < 2:
        return np.zeros((len(x), 2), np.float32)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    basis = vt[:2].T  # (D, 2); fewer than 2 axes when D == 1
    if basis.shape[1] < 2:
        basis = np.pad(basis, ((0, 0), (0, 2 - basis.shape[1])))
    basis *= np.where(basis.sum(axis=0) < 0, -1.0, 1.0)  # fix the sign so a rebuild gives the same map
    out = np.empty((len(x), 2), np.float32)
    for start in range(0, len(x), block):
        out[start : start + block] = (np.asarray(x[start : start + block], np.float64) - mean) @ basis
    return out


def _umap(x: np.ndarray, fit_rows: np.ndarray | None, seed: int, n_neighbors: int) -> np.ndarray:
    import umap

    fit = np.asarray(x if fit_rows is None else x[fit_rows], dtype=np.float32)
    model = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(fit) - 1), metric="cosine",
                      random_state=seed, low_memory=True)
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": reproducibility is the point.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        emb = model.fit_transform(fit)
    if fit_rows is None:
        return np.asarray(emb, np.float32)
    out = np.empty((len(x), 2), np.float32)
    out[fit_rows] = emb
    rest = np.setdiff1d(np.arange(len(x)), fit_rows)
    for start in range(0, len(rest), 1 << 16):
        rows = rest[start : start + (1 << 16)]
        out[rows] = model.transform(np.asarray(x[rows], np.float32))
    return out
