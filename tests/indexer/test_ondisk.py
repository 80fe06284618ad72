"""indexer.ondisk: IVF-PQ with on-disk lists, re-ranked against float16 rows on disk.

20k x 32 clustered unit vectors (generated here, seeded); one index built per module and
shared read-only, plus the builds a test is about (parallel fill, bad inputs).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer import ondisk
from indexer.index_types import (
    HNSW_MAX_N,
    ONDISK_MIN_N,
    IndexSpec,
    build_index,
    choose_index,
    intersection_recall,
    ondisk_spec,
)
from indexer.ondisk import OnDiskIVF, build_ondisk, open_ondisk

N, D, K = 20_000, 32, 10
SPEC = IndexSpec("IVF64,PQ8x8", storage="ondisk", train_size=10_000, search_params={"nprobe": 16, "k_factor": 16})


def clustered(n: int, d: int, seed: int, clusters: int = 40) -> np.ndarray:
    """(n, d) float32 unit vectors around ``clusters`` random centres with their own spread."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.uniform(0.3, 0.8, clusters)
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + spread[labels, None] * rng.standard_normal((n, d)) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """The float16 embeddings as a read-only memmap (like a version's embeddings.npy) and queries."""
    path = tmp_path_factory.mktemp("emb") / "embeddings.npy"
    np.save(path, clustered(N, D, 0).astype(np.float16))
    return np.load(path, mmap_mode="r"), clustered(200, D, 1)


@pytest.fixture(scope="module")
def built(data: tuple[np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("built") / "ondisk"
    meta = build_ondisk(data[0], folder, SPEC, seed=0, processes=1, block_rows=4096)
    return folder, meta


def exact(x16: np.ndarray, q: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    sims, ids = faiss.knn(q, np.asarray(x16, dtype=np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    return 1.0 - sims, ids


def test_recall_after_float16_rerank_against_exact_search(data, built) -> None:
    x16, q = data
    searcher = open_ondisk(built[0], x16)
    _, truth = exact(x16, q)
    _, ids = searcher.search(q, K)
    assert intersection_recall(ids, truth) >= 0.95
    searcher.configure(k_factor=1)  # the PQ codes alone: the re-rank is what brings recall up
    _, pq_only = searcher.search(q, K)
    assert intersection_recall(pq_only, truth) < 0.8


def test_search_conventions(data, built) -> None:
    x16, q = data
    s = open_ondisk(built[0], x16)
    assert (s.ntotal, s.d, s.nprobe, s.k_factor) == (N, D, 16, 16)
    dist, ids = s.search(q, K)
    assert dist.dtype == np.float32 and ids.dtype == np.int64 and dist.shape == ids.shape == (len(q), K)
    assert (np.diff(dist, axis=1) >= 0).all()  # nearest first
    # distance = 1 - cosine against the stored float16 row, exactly
    rows = np.asarray(x16[ids], dtype=np.float32)
    np.testing.assert_allclose(dist, 1.0 - np.einsum("qkd,qd->qk", rows, q), atol=1e-6)
    # a stored row finds itself first (float16 rounding: distance ~1e-4, not 0)
    self_d, self_i = s.search(np.asarray(x16[[5, 17_000]], dtype=np.float32), 3)
    assert self_i[:, 0].tolist() == [5, 17_000] and (self_d[:, 0] < 1e-3).all()
    # fewer hits than k: id -1 and distance inf at the tail, real hits before them
    s.configure(nprobe=1, k_factor=1)
    dist, ids = s.search(q[:3], 2_000)  # one list holds ~N/64 = 312 vectors
    assert (ids[:, -1] == -1).all() and np.isinf(dist[:, -1]).all()
    assert ((ids >= 0) == np.isfinite(dist)).all() and (ids[:, 0] >= 0).all()
    empty_d, empty_i = s.search(np.zeros((0, D), np.float32), K)
    assert empty_d.shape == empty_i.shape == (0, K)


def test_lists_are_mapped_read_only_and_prefetch_is_off_by_default(data, built) -> None:
    x16, q = data
    s = open_ondisk(built[0], x16)
    ivfdata = str(built[0] / "index.ivfdata")
    perms = [ln.split()[1] for ln in Path("/proc/self/maps").read_text().splitlines() if ln.endswith(ivfdata)]
    assert perms and all(p.startswith("r-") for p in perms), perms  # a read-only mount works; no stray writes
    assert s.prefetch_threads == 0  # FAISS's 32 threads per call cost ~5 ms a query with a warm page cache
    ref = s.search(q, K)
    s.configure(prefetch_threads=4)
    got = s.search(q, K)
    np.testing.assert_array_equal(got[1], ref[1])
    with pytest.raises(ValueError, match="prefetch_threads"):
        s.configure(prefetch_threads=-1)


def test_parallel_fill_gives_the_same_index_as_one_process(data, built, tmp_path: Path) -> None:
    x16, q = data
    one = open_ondisk(built[0], x16)
    from_memmap = build_ondisk(x16, tmp_path / "p2", SPEC, seed=0, processes=2)
    in_memory = build_ondisk(np.array(x16), tmp_path / "p3", SPEC, seed=0, processes=3)  # spilled to a file
    assert (from_memmap["processes"], in_memory["processes"]) == (2, 3)
    ref = one.search(q, K)
    for folder in ("p2", "p3"):
        got = open_ondisk(tmp_path / folder, x16).search(q, K)
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_array_equal(got[0], ref[0])
        assert (tmp_path / folder / "index.ivfdata").read_bytes() == (built[0] / "index.ivfdata").read_bytes()
        assert sorted(os.listdir(tmp_path / folder)) == ["index.faiss", "index.ivfdata", "ondisk.json"]


def test_folder_can_be_renamed_and_reopened(data, built, tmp_path: Path) -> None:
    x16, q = data
    stage = tmp_path / "building" / "stage"
    shutil.copytree(built[0], stage)
    before = open_ondisk(stage, x16).search(q, K)
    index_bytes = (stage / "index.faiss").read_bytes()
    assert str(stage).encode() not in index_bytes and str(built[0]).encode() not in index_bytes
    published = tmp_path / "versions" / "v1"
    published.parent.mkdir()
    os.rename(stage, published)  # how artifacts publish a version
    after = open_ondisk(published, x16).search(q, K)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])


def test_open_reads_params_and_embeddings_path(data, built, tmp_path: Path) -> None:
    x16, q = data
    meta = json.loads((built[0] / "ondisk.json").read_text())
    assert meta["ntotal"] == N and meta["spec"] == SPEC.to_json() and meta["gpu"] is False
    assert set(meta["seconds"]) == {"train", "fill", "merge"}
    s = open_ondisk(built[0], x16.filename, {"nprobe": 4, "k_factor": 2})
    assert (s.nprobe, s.k_factor, s.quantizer_efSearch) == (4, 2, None)
    s2 = open_ondisk(built[0], x16, SPEC)
    assert (s2.nprobe, s2.k_factor) == (16, 16)


def test_block_size_does_not_change_the_index(data, built, tmp_path: Path) -> None:
    x16, _ = data
    build_ondisk(x16, tmp_path / "b", SPEC, seed=0, block_rows=N)
    assert (tmp_path / "b" / "index.ivfdata").read_bytes() == (built[0] / "index.ivfdata").read_bytes()


def test_hnsw_quantizer_params(data, tmp_path: Path) -> None:
    x16, q = data
    spec = IndexSpec(
        "IVF64_HNSW32,PQ8x8",
        storage="ondisk",
        train_size=10_000,
        search_params={"nprobe": 16, "k_factor": 16, "quantizer_efSearch": 40},
    )
    build_ondisk(x16[:12_000], tmp_path / "h", spec, seed=0)
    s = open_ondisk(tmp_path / "h", x16[:12_000])
    assert s.quantizer_efSearch == 40
    _, truth = exact(x16[:12_000], q)
    assert intersection_recall(s.search(q, K)[1], truth) >= 0.95


@pytest.mark.parametrize(
    ("vectors", "spec", "kwargs", "match"),
    [
        (np.ones(D, np.float32), SPEC, {}, "2-D"),
        (np.ones((100, D), np.int32), SPEC, {}, "dtype int32"),
        (np.zeros((0, D), np.float32), SPEC, {}, "at least one row"),
        ("unnormalised", SPEC, {}, "L2-normalised"),
        ("nan", SPEC, {}, "NaN"),
        (None, IndexSpec("IVF64,PQ8x8"), {}, "storage 'memory'"),
        (None, IndexSpec("IVF64,PQ8x8,RFlat", storage="ondisk"), {}, "no RFlat"),
        (None, IndexSpec("HNSW32", storage="ondisk"), {}, "not an IVF"),
        (None, IndexSpec("IVF4096,PQ8x8", storage="ondisk", train_size=1000), {}, "at least 4096 training"),
        (None, IndexSpec("IVF64,PQ8x8", storage="ondisk", search_params={"efSearch": 8}), {}, "efSearch"),
        (None, IndexSpec("IVF64,PQ8x8", storage="ondisk", build_params={"efConstruction": 8}), {}, "efConstruction"),
        (None, SPEC, {"processes": 0}, "processes"),
        (None, SPEC, {"block_rows": 0}, "block_rows"),
        (None, {"factory": "IVF64,PQ8x8", "storage": "tape"}, {}, "storage must be one of"),
        (None, SPEC, {"use_gpu": True} if faiss.get_num_gpus() == 0 else {"processes": -1}, "GPU|processes"),
    ],
)
def test_build_rejects_bad_inputs(vectors, spec, kwargs, match, data, tmp_path: Path) -> None:
    x = np.asarray(data[0][:4000], dtype=np.float32).copy()
    if isinstance(vectors, str):  # "unnormalised" or "nan": one bad row among good ones
        if vectors == "nan":
            x[1234, 3] = np.nan
        else:
            x[1234] *= 2
        vectors = x
    elif vectors is None:
        vectors = x
    with pytest.raises(ValueError, match=match):
        build_ondisk(vectors, tmp_path / "out", spec, **kwargs)
    assert not (tmp_path / "out" / "index.faiss").exists()


def test_bad_rows_are_named_by_row_number(data, tmp_path: Path) -> None:
    x = np.asarray(data[0][:12_000], dtype=np.float32).copy()
    x[11_000] *= 3
    with pytest.raises(ValueError, match=r"row 11000 has norm 3 "):  # found in the training sample
        build_ondisk(x, tmp_path / "a", SPEC, block_rows=4096)
    x[11_000] /= 3
    x[11_999, 0] = np.inf  # not in the training sample: found while filling, in a child process
    spec = IndexSpec(SPEC.factory, storage="ondisk", train_size=5000)
    with pytest.raises(ValueError, match=r"row 11999 has NaN or inf"):
        build_ondisk(x, tmp_path / "b", spec, block_rows=4096, processes=2)
    assert not (tmp_path / "b" / "index.faiss").exists() and not (tmp_path / "b" / ".ondisk-build").exists()


def test_build_refuses_a_folder_that_holds_an_index(data, built) -> None:
    with pytest.raises(FileExistsError, match="already holds"):
        build_ondisk(data[0], built[0], SPEC)


def test_open_rejects_bad_inputs(data, built, tmp_path: Path) -> None:
    x16, q = data
    with pytest.raises(ValueError, match=r"shape \(19999, 32\)"):
        OnDiskIVF(built[0], x16[:-1])
    with pytest.raises(ValueError, match="float16"):
        OnDiskIVF(built[0], np.asarray(x16, dtype=np.float64))
    with pytest.raises(FileNotFoundError, match="no on-disk index"):
        open_ondisk(tmp_path, x16, {"nprobe": 1})
    with pytest.raises(ValueError, match="efSearch"):
        open_ondisk(built[0], x16, {"efSearch": 3})
    s = open_ondisk(built[0], x16)
    with pytest.raises(ValueError, match="nprobe"):
        s.configure(nprobe=0)
    with pytest.raises(ValueError, match="k_factor"):
        s.configure(k_factor=0)
    with pytest.raises(ValueError, match="HNSW coarse"):
        s.configure(quantizer_efSearch=8)
    with pytest.raises(ValueError, match="k must be"):
        s.search(q, 0)
    with pytest.raises(ValueError, match="dimension mismatch"):
        s.search(np.ones((1, 16), np.float32) / 4, K)
    with pytest.raises(ValueError, match="L2-normalised"):
        s.search(q * 2, K)


# ---------------------------------------------------------------- IndexSpec and choice


def test_spec_json_stays_backward_compatible() -> None:
    old = {
        "factory": "HNSW32",
        "metric": "ip",
        "search_params": {"efSearch": 64},
        "train_size": None,
        "build_params": {"efConstruction": 160},
    }  # a manifest written before `storage`
    spec = IndexSpec.from_json(old)
    assert spec.storage == "memory" and spec.to_json() == old
    disk = ondisk_spec(10**8, 128)
    assert disk.to_json()["storage"] == "ondisk" and IndexSpec.from_json(json.dumps(disk.to_json())) == disk
    with pytest.raises(ValueError, match="storage"):
        IndexSpec("IVF64,PQ8x8", storage="ram")


def test_choose_index_picks_ondisk_only_when_asked() -> None:
    assert ONDISK_MIN_N >= HNSW_MAX_N
    assert choose_index(ONDISK_MIN_N, 128).storage == "memory"  # callers that cannot serve it yet
    spec = choose_index(ONDISK_MIN_N, 128, ondisk=True)
    assert spec.storage == "ondisk" and spec.factory == "IVF16384_HNSW32,PQ32x8"
    assert set(spec.search_params) == {"nprobe", "k_factor", "quantizer_efSearch"}
    assert choose_index(HNSW_MAX_N // 2, 128, ondisk=True).factory.startswith("HNSW")
    wide = choose_index(10**9, 2048, ondisk=True)
    assert wide.factory.startswith("PCAR256,") and "RFlat" not in wide.factory


def test_build_index_refuses_an_ondisk_spec() -> None:
    x = clustered(2000, 8, 0)
    with pytest.raises(ValueError, match="build_ondisk"):
        build_index(x, IndexSpec("IVF16,PQ2x8", storage="ondisk"))


def test_cpu_path_without_gpu(data, built) -> None:
    assert built[1]["gpu"] is (faiss.get_num_gpus() > 0)
    assert ondisk._gpu_wanted(False) is False


@pytest.mark.gpu
def test_gpu_training_path(data, tmp_path: Path) -> None:
    x16, q = data
    meta = build_ondisk(x16, tmp_path / "g", SPEC, seed=0, use_gpu=True)
    assert meta["gpu"] is True
    _, truth = exact(x16, q)
    assert intersection_recall(open_ondisk(tmp_path / "g", x16).search(q, K)[1], truth) >= 0.95
