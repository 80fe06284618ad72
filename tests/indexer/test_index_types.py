"""indexer.index_types: index choice, recall of each index type against exact search, files."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from indexer.index_types import (
    FLAT_MAX_N,
    HNSW_MAX_N,
    TINY_N,
    IndexSpec,
    apply_search_params,
    build_index,
    choose_index,
    ivf_nlist,
    load_index,
    recall_at_k,
    save_index,
    search,
)

DIM = 64


def clustered_unit_vectors(n: int, dim: int = DIM, n_clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Seeded clusters: unit centres, noise in an 8-d subspace per cluster, a little isotropic."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((n_clusters, 8, dim)) / np.sqrt(8 * dim)  # |noise| ~ 1
    spread = rng.uniform(0.3, 0.8, n_clusters)
    labels = rng.integers(n_clusters, size=n)
    z = rng.standard_normal((n, 8))
    low_rank = np.einsum("nr,nrd->nd", z, basis[labels])
    iso = 0.2 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    x = centres[labels] + spread[labels, None] * (low_rank + iso)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    """One OpenMP thread: on a shared 2-core machine spinning libgomp threads slow tests 5x."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered_unit_vectors(10_000)


# ---------------------------------------------------------------- choice


def test_choose_index_follows_size_thresholds() -> None:
    assert choose_index(100, 128).factory == "Flat"
    assert choose_index(FLAT_MAX_N - 1, 128).factory == "Flat"
    hnsw = choose_index(FLAT_MAX_N, 128)
    assert hnsw.factory.startswith("HNSW") and "efSearch" in hnsw.search_params
    assert hnsw.build_params["efConstruction"] > 40  # FAISS's default leaves clusters as islands
    assert choose_index(HNSW_MAX_N - 1, 128).factory == hnsw.factory
    ivf = choose_index(HNSW_MAX_N, 128)
    assert ivf.factory == "IVF16384_HNSW32,PQ32x8,RFlat"  # 4*sqrt(1e7) = 12649 -> 2^14
    assert set(ivf.search_params) == {"nprobe", "k_factor", "quantizer_efSearch"}
    assert ivf.train_size is not None and ivf.train_size >= 39 * 16384
    wide = choose_index(10**8, 2048)
    assert wide.factory.startswith("PCAR256,IVF") and ",PQ64x8," in wide.factory


def test_choose_index_respects_memory_budget() -> None:
    n, dim = 500_000, 128
    assert choose_index(n, dim, memory_budget_bytes=4 * n * dim).factory == "Flat"
    # Too small for Flat and for the HNSW graph: IVF-PQ, re-ranked from SQ8 copies.
    small = choose_index(n, dim, memory_budget_bytes=n * (32 + 8 + dim))
    assert small.factory.startswith("IVF") and small.factory.endswith("Refine(SQ8)")
    tight = choose_index(n, dim, memory_budget_bytes=n * 48)
    assert "Refine" not in tight.factory and "RFlat" not in tight.factory
    assert "k_factor" not in tight.search_params
    assert choose_index(TINY_N - 1, dim, memory_budget_bytes=1).factory == "Flat"


def test_ivf_nlist_is_a_power_of_two_with_enough_points() -> None:
    assert ivf_nlist(10**6) == 4096
    assert ivf_nlist(20_000) == 512
    assert ivf_nlist(1_000) == 16  # capped so every list gets >= 39 training points


@pytest.mark.parametrize("n, dim, budget", [(0, 64, None), (10, 0, None), (10, 64, 0)])
def test_choose_index_rejects_bad_sizes(n: int, dim: int, budget: int | None) -> None:
    with pytest.raises(ValueError):
        choose_index(n, dim, memory_budget_bytes=budget)


def test_spec_json_round_trip_and_validation() -> None:
    spec = IndexSpec("IVF64,PQ16x8,RFlat", search_params={"nprobe": 16, "k_factor": 8}, train_size=5000)
    assert IndexSpec.from_json(spec.to_json()) == spec
    assert IndexSpec.from_json(json.dumps(spec.to_json())) == spec
    with pytest.raises(ValueError, match="unknown IndexSpec field"):
        IndexSpec.from_json({**spec.to_json(), "nlist": 64})
    with pytest.raises(ValueError, match="metric"):
        IndexSpec("Flat", metric="l2")
    with pytest.raises(ValueError, match="unknown search parameter"):
        IndexSpec("HNSW32", search_params={"ef_search": 64})
    with pytest.raises(ValueError, match="unknown build parameter"):
        IndexSpec("HNSW32", build_params={"M": 64})
    hnsw = IndexSpec("HNSW32", search_params={"efSearch": 64}, build_params={"efConstruction": 160})
    assert IndexSpec.from_json(hnsw.to_json()) == hnsw
    older = {k: v for k, v in spec.to_json().items() if k != "build_params"}
    assert IndexSpec.from_json(older) == spec


# ---------------------------------------------------------------- recall of each type

SPECS = {
    "flat": (IndexSpec("Flat"), 1.0),
    "hnsw": (IndexSpec("HNSW16", search_params={"efSearch": 64}), 0.95),
    "ivfpq_refine": (
        IndexSpec("IVF64,PQ16x8,RFlat", search_params={"nprobe": 16, "k_factor": 8}, train_size=10_000),
        0.95,
    ),
    "ivfpq_sq8_refine": (
        IndexSpec("IVF64,PQ16x8,Refine(SQ8)", search_params={"nprobe": 16, "k_factor": 8}, train_size=10_000),
        0.95,
    ),
    "pca_ivfpq_refine": (
        IndexSpec(
            "PCAR32,IVF64,PQ8x8,RFlat",
            search_params={"nprobe": 16, "k_factor": 8},
            train_size=10_000,
        ),
        0.9,
    ),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_index_type_reaches_recall(vectors: np.ndarray, name: str) -> None:
    spec, threshold = SPECS[name]
    index = build_index(vectors, spec, seed=0, threads=1)
    assert index.ntotal == len(vectors)
    recall = recall_at_k(index, vectors, k=10, sample=300, seed=1)
    assert recall >= threshold, f"{name}: recall@10 {recall:.3f} < {threshold}"


def test_exact_rerank_recovers_recall_lost_by_pq(vectors: np.ndarray) -> None:
    pq_only = IndexSpec("IVF64,PQ16x8", search_params={"nprobe": 16}, train_size=10_000)
    refined, _ = SPECS["ivfpq_refine"]
    lossy = recall_at_k(build_index(vectors, pq_only, threads=1), vectors, sample=300, seed=1)
    exact = recall_at_k(build_index(vectors, refined, threads=1), vectors, sample=300, seed=1)
    assert lossy < 0.9 < 0.95 <= exact  # DESIGN.md §6: PQ alone 0.5-0.9, re-ranked ~1


def test_flat_finds_each_query_itself_at_distance_zero(vectors: np.ndarray) -> None:
    index = build_index(vectors[:2000], IndexSpec("Flat"))
    dist, ids = search(index, vectors[:50], k=5)
    assert dist.dtype == np.float32 and ids.dtype == np.int64 and dist.shape == (50, 5)
    np.testing.assert_array_equal(ids[:, 0], np.arange(50))
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-5)
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # nearest first
    # distance = 1 - cosine similarity
    np.testing.assert_allclose(dist[:, 1], 1.0 - np.sum(vectors[:50] * vectors[ids[:, 1]], axis=1), atol=1e-5)


def test_k_larger_than_index_pads_with_minus_one_and_inf(vectors: np.ndarray) -> None:
    index = build_index(vectors[:3], IndexSpec("Flat"))
    dist, ids = search(index, vectors[:2], k=5)
    assert (ids[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all()
    empty_d, empty_i = search(index, np.zeros((0, DIM), np.float32), k=5)
    assert empty_d.shape == (0, 5) and empty_i.shape == (0, 5)


def test_search_params_are_applied_to_nested_indexes(vectors: np.ndarray) -> None:
    spec = IndexSpec("PCAR32,IVF64,PQ8x8,RFlat", search_params={"nprobe": 16, "k_factor": 8}, train_size=5000)
    index = build_index(vectors[:5000], spec)
    apply_search_params(index, IndexSpec(spec.factory, search_params={"nprobe": 3, "k_factor": 2}))
    refine = faiss.downcast_index(index)
    ivf = faiss.downcast_index(faiss.downcast_index(refine.base_index).index)
    assert refine.k_factor == 2 and ivf.nprobe == 3
    with pytest.raises(ValueError, match="do not apply"):
        apply_search_params(index, IndexSpec(spec.factory, search_params={"efSearch": 10}))
    hnsw_q = IndexSpec("IVF32_HNSW16,Flat", search_params={"nprobe": 4, "quantizer_efSearch": 24})
    built = build_index(vectors[:2000], hnsw_q)  # keep: downcast views do not own the index
    ivf = faiss.downcast_index(built)
    assert ivf.nprobe == 4 and faiss.downcast_index(ivf.quantizer).hnsw.efSearch == 24


def test_build_params_are_applied(vectors: np.ndarray) -> None:
    spec = IndexSpec("HNSW16", search_params={"efSearch": 32}, build_params={"efConstruction": 80})
    built = build_index(vectors[:1000], spec)
    index = faiss.downcast_index(built)
    assert index.hnsw.efConstruction == 80 and index.hnsw.efSearch == 32
    with pytest.raises(ValueError, match="do not apply"):
        build_index(vectors[:100], IndexSpec("Flat", build_params={"efConstruction": 80}))


# ---------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["flat", "hnsw", "ivfpq_refine"])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip_gives_identical_results(tmp_path, vectors: np.ndarray, name: str, mmap: bool) -> None:
    spec, _ = SPECS[name]
    subset = vectors[:5000]
    index = build_index(
        subset,
        IndexSpec(
            spec.factory,
            search_params=spec.search_params,
            train_size=5000 if spec.train_size else None,
        ),
        threads=1,
    )
    path = tmp_path / "index.faiss"
    save_index(index, path)
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]  # no temp file left behind
    loaded = load_index(path, spec, mmap=mmap)
    d0, i0 = search(index, vectors[:100], k=10)
    d1, i1 = search(loaded, vectors[:100], k=10)
    np.testing.assert_array_equal(i0, i1)
    np.testing.assert_array_equal(d0, d1)


def test_load_missing_file_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_index(tmp_path / "nope.faiss", IndexSpec("Flat"))


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_value_error(vectors: np.ndarray) -> None:
    index = build_index(vectors[:100], IndexSpec("Flat"))
    with pytest.raises(ValueError, match="dimension mismatch"):
        search(index, vectors[:2, :32], k=3)
    with pytest.raises(ValueError, match="2-D"):
        search(index, vectors[0], k=3)
    with pytest.raises(ValueError, match="k must be"):
        search(index, vectors[:2], k=0)
    nan = vectors[:100].copy()
    nan[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        build_index(nan, IndexSpec("Flat"))
    with pytest.raises(ValueError, match="L2-normalised"):
        build_index(vectors[:100] * 2.0, IndexSpec("Flat"))
    with pytest.raises(ValueError, match="zero vectors"):
        build_index(np.zeros((0, DIM), np.float32), IndexSpec("Flat"))
    with pytest.raises(ValueError, match="factory"):
        build_index(vectors[:100], IndexSpec("NoSuchIndex12"))
    with pytest.raises(ValueError, match="training vectors"):
        build_index(vectors[:100], IndexSpec("IVF256,Flat", search_params={"nprobe": 4}))
    with pytest.raises(ValueError, match="do not apply"):
        build_index(vectors[:100], IndexSpec("Flat", search_params={"efSearch": 16}))
    with pytest.raises(ValueError, match="index holds"):
        recall_at_k(index, vectors[:50])
