"""The vector engines the read side can search a version with, behind one small interface.

`IndexedSurvey` keeps catalogue filters, exclusions and the exact-k guarantee to itself and asks
an engine only for "the k nearest rows to these unit vectors" (optionally with a pushed-down
filter expression). Which engine serves a version is the service's choice (`SKYSIFT_BACKEND`),
not the version's: every version carries its FAISS index, and one built with `--backend milvus`
also names its Milvus collection, so the same version can be served either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from . import index_types
from .errors import ArtifactMismatch
from .manifest import Manifest

Backend = Literal["faiss", "milvus"]
BACKENDS: tuple[Backend, ...] = ("faiss", "milvus")


class Searcher(Protocol):
    d: int
    ntotal: int
    max_k: int  # the largest k one search may ask for
    supports_filter: bool  # whether `where` (a Milvus boolean expression) is applied by the engine

    def search(self, queries: np.ndarray, k: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(1 - cosine (Q, k) float32, rows (Q, k) int64), nearest first; -1 / inf past the hits."""
        ...


ONDISK_DIR = "index"  # a version's on-disk IVF-PQ folder (indexer.ondisk), next to embeddings.npy


class FaissSearcher:
    """The version's FAISS index: index.faiss in this process's memory (the default, one machine),
    or IVF-PQ lists on disk in index/ re-ranked against the float16 embeddings.npy (past 10^7)."""

    supports_filter = False

    def __init__(self, version_dir: Path, spec: index_types.IndexSpec) -> None:
        self.spec = spec
        self.index: Any
        if spec.storage == "ondisk":
            from .ondisk import open_ondisk

            self.index = open_ondisk(Path(version_dir) / ONDISK_DIR, Path(version_dir) / "embeddings.npy", spec)
        else:
            self.index = on_gpu(index_types.load_index(Path(version_dir) / "index.faiss", spec), spec)
        self.d = int(self.index.d)
        self.ntotal = int(self.index.ntotal)
        self.max_k = self.ntotal

    def search(self, queries: np.ndarray, k: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
        if where:
            raise ValueError("the FAISS searcher applies no filter expression; filter with the catalogue mask")
        if self.spec.storage == "ondisk":
            return self.index.search(queries, k)  # type: ignore[no-any-return]
        return index_types.search(self.index, queries, k)


def gpu_can_hold(factory: str) -> bool:
    """Exact Flat and plain IVF (flat or PQ lists) move to a GPU whole; HNSW (cuVS CAGRA is another
    index), a PCA pre-transform and an exact re-rank (IndexRefine) stay on the CPU."""
    parts = factory.split(",")
    return factory == "Flat" or (parts[0].startswith("IVF") and "HNSW" not in parts[0] and len(parts) == 2
                                 and (parts[1] == "Flat" or parts[1].startswith("PQ")))


def on_gpu(index: Any, spec: index_types.IndexSpec) -> Any:
    """`index` moved to GPU 0 when faiss-gpu sees one and can hold its kind (exact Flat, IVF with
    flat/PQ lists), else `index` itself: the CPU path, which is what the tests and CPU images run.
    Batch and exact searches (the build's kNN for the anomaly score, evaluation, the service) then
    run on the GPU without another code path."""
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus < 1 or not gpu_can_hold(spec.factory):
        return index
    gpu_index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    if "nprobe" in spec.search_params:
        faiss.GpuParameterSpace().set_index_parameter(gpu_index, "nprobe", int(spec.search_params["nprobe"]))
    return gpu_index


def open_index(version_dir: Path, spec: index_types.IndexSpec) -> FaissSearcher:
    return FaissSearcher(version_dir, spec)


def open_searcher(version_dir: Path, info: Manifest, backend: Backend = "faiss",
                  milvus_uri: str | None = None) -> Searcher:
    """The engine `backend` for the version at `version_dir` (ArtifactMismatch when the version was
    not built for it; `milvus_uri` overrides the URI the build recorded, e.g. inside a container)."""
    if backend == "faiss":
        spec = index_types.IndexSpec.from_json(info.index.model_dump(
            include={"factory", "metric", "search_params", "train_size", "storage"}))
        return FaissSearcher(Path(version_dir), spec)
    if backend == "milvus":
        if info.milvus is None:
            raise ArtifactMismatch(f"version {info.version} has no Milvus collection (built without "
                                   "`skysift index --backend milvus`); serve it with SKYSIFT_BACKEND=faiss "
                                   "or rebuild it")
        from .milvus_backend import MilvusIndex

        return MilvusIndex(info.milvus.model_dump(), milvus_uri, expected_n=info.n_objects)
    raise ValueError(f"unknown backend {backend!r}; use one of {list(BACKENDS)}")
