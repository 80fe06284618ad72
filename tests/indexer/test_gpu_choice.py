"""The read side moves a FAISS index to a GPU only where faiss-gpu sees one and can hold that kind of
index; everywhere else (faiss-cpu, every test machine) the CPU index is used as it is. The GPU calls
are stand-ins here: what is checked is the choice and the parameters handed over."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import pytest

from indexer import index_types
from indexer.searchers import gpu_can_hold, on_gpu


@pytest.mark.parametrize(("factory", "holds"), [
    ("Flat", True), ("IVF1024,Flat", True), ("IVF1024,PQ32x8", True), ("HNSW32", False),
    ("IVF65536_HNSW32,PQ32x8", False), ("IVF4096,PQ32x8,RFlat", False), ("PCAR128,IVF4096,PQ32x8", False),
])
def test_which_indexes_a_gpu_can_hold(factory: str, holds: bool) -> None:
    assert gpu_can_hold(factory) is holds


def small_index(factory: str, params: dict[str, float]) -> tuple[Any, index_types.IndexSpec]:
    x = np.random.default_rng(0).normal(size=(2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    spec = index_types.IndexSpec(factory, search_params=params, train_size=2000 if "IVF" in factory else None)
    return index_types.build_index(x, spec), spec


def test_without_a_gpu_the_cpu_index_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    index, spec = small_index("Flat", {})
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)  # faiss-cpu, or faiss-gpu on a machine without one
    assert on_gpu(index, spec) is index


def test_with_a_gpu_flat_and_ivf_move_and_keep_nprobe(monkeypatch: pytest.MonkeyPatch) -> None:
    moved: list[tuple[int, Any]] = []
    params: list[tuple[str, int]] = []

    class Space:
        def set_index_parameter(self, index: Any, name: str, value: int) -> None:
            params.append((name, value))

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "resources", raising=False)
    monkeypatch.setattr(faiss, "GpuParameterSpace", Space, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, idx: moved.append((dev, idx)) or ("gpu", idx),
                        raising=False)
    ivf, spec = small_index("IVF16,Flat", {"nprobe": 4})
    assert on_gpu(ivf, spec) == ("gpu", ivf) and moved == [(0, ivf)] and params == [("nprobe", 4)]
    hnsw, spec = small_index("HNSW16", {"efSearch": 32})
    assert on_gpu(hnsw, spec) is hnsw and len(moved) == 1  # HNSW stays on the CPU
