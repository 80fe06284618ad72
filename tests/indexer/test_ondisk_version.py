"""A version whose FAISS index keeps its IVF-PQ lists on disk (`index_storage="ondisk"`, what the
size-based choice picks past index_types.ONDISK_MIN_N): built through the product, published by
renaming its stage, served with the float16 re-rank, and close to exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.artifacts import current_dir
from indexer.pipeline import index_survey
from indexer.searchers import ONDISK_DIR
from indexer.settings import IndexSettings
from indexer.store import Filters, IndexedSurvey


def test_ondisk_version_serves_near_exact_neighbours(tiny_survey: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    index_survey(IndexSettings(survey=tiny_survey, encoder=tiny_encoder, artifacts=root, job="od", device="cpu",
                               shard_size=64, recall_sample=100, map_method="pca", index_storage="ondisk",
                               index_processes=2))
    version = current_dir(root)
    assert (version / ONDISK_DIR / "index.ivfdata").is_file() and not (version / "index.faiss").exists()
    store = IndexedSurvey(version, check_hashes=True)  # the manifest hashes the on-disk lists too
    assert store.spec.storage == "ondisk" and store.info.index.recall_at_10 is not None
    assert store.info.index.recall_at_10 >= 0.9
    vec = np.asarray(store.embeddings, dtype=np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    found = []
    for r in range(0, len(store), 7):
        exact = np.argsort(-(vec @ vec[r]), kind="stable")[:10]
        hits = store.similar(str(store.catalog["object_id"][r]), 10)
        assert hits[0].row == r and hits[0].distance < 1e-3
        found.append(len({h.row for h in hits} & set(exact.tolist())) / 10)
    assert np.mean(found) >= 0.9
    z = np.asarray(store.catalog["z"], dtype=float)
    lo = float(np.quantile(z, 0.8))
    hits = store.search_vector(store.vector(0), 10, Filters(z_min=lo))
    assert len(hits) == 10 and all(z[h.row] >= lo for h in hits)
