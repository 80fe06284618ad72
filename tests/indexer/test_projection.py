"""The 2-D explorer map: PCA and UMAP projections, and map.npy in a built version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.projection import project_2d, resolve_method, umap_available
from indexer.settings import IndexSettings
from indexer.store import IndexedSurvey


def two_clusters(n: int = 200, d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.5
    x = rng.normal(size=(n, d)) * 0.1 + np.where(label[:, None], 1.0, -1.0) * np.eye(d)[0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), label


def test_pca_map_separates_clusters_and_is_reproducible() -> None:
    x, label = two_clusters()
    xy = project_2d(x, "pca", seed=0)
    assert xy.shape == (len(x), 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    a, b = xy[label].mean(axis=0), xy[~label].mean(axis=0)
    spread = max(xy[label].std(axis=0).max(), xy[~label].std(axis=0).max())
    assert np.linalg.norm(a - b) > 3 * spread
    np.testing.assert_array_equal(project_2d(x, "pca", seed=0), xy)
    np.testing.assert_allclose(project_2d(x[::-1], "pca")[::-1], xy, atol=1e-5)  # sign fixed, order-free


def test_pca_on_a_sample_still_places_every_object() -> None:
    x, label = two_clusters(500)
    xy = project_2d(x, "pca", seed=1, fit_max=50)
    assert xy.shape == (500, 2) and np.isfinite(xy).all()
    assert np.sign(xy[label, 0].mean()) != np.sign(xy[~label, 0].mean())


def test_edge_cases() -> None:
    assert project_2d(np.zeros((0, 8), np.float32), "pca").shape == (0, 2)
    assert project_2d(np.ones((1, 8), np.float32), "pca").shape == (1, 2)
    with pytest.raises(ValueError, match="map method"):
        resolve_method("tsne", 100)  # type: ignore[arg-type]
    assert resolve_method("umap", 10) == "pca"  # too few points for a neighbour graph
    assert resolve_method("umap", 10_000) == ("umap" if umap_available() else "pca")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        project_2d(np.zeros(5), "pca")


def test_settings_default_to_umap_when_installed() -> None:
    assert IndexSettings().map_method == ("umap" if umap_available() else "pca")
    assert IndexSettings(map_method="pca").map_method == "pca"


def test_built_version_has_a_map_listed_in_the_manifest(tiny_artifacts: Path) -> None:
    store = IndexedSurvey.open_current(tiny_artifacts)
    m = store.manifest
    assert m["map"]["file"] == "map.npy" and "map.npy" in m["files"]
    assert m["map"]["method"] in ("umap", "pca") and store.map_method == m["map"]["method"]
    assert store.map_xy is not None and store.map_xy.shape == (len(store), 2)
    assert store.map_xy.dtype == np.float32 and np.isfinite(store.map_xy).all()


@pytest.mark.slow
@pytest.mark.skipif(not umap_available(), reason="umap-learn not installed")
def test_umap_map_separates_clusters() -> None:
    """~1 min of numba compilation on first use; deselected by default (-m slow runs it)."""
    x, label = two_clusters(300)
    xy = project_2d(x, "umap", seed=0)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    a, b = xy[label].mean(axis=0), xy[~label].mean(axis=0)
    assert np.linalg.norm(a - b) > 2 * max(xy[label].std(axis=0).max(), xy[~label].std(axis=0).max())
