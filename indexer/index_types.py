"""Choosing, building, searching and saving FAISS indexes for L2-normalised embeddings.

Every index here uses ``METRIC_INNER_PRODUCT``: on unit vectors the inner product is the
cosine similarity, and :func:`search` reports ``distance = 1 - cosine similarity`` (0 for
the object itself, 2 for its antipode; ``inf`` where an index returned fewer than ``k``
hits).

Index choice by size (DESIGN.md §5; numbers from ``bench/bench_index_types.py`` on
10^6 x 128 clustered unit vectors, 2 shared cores, see ``docs/benchmarks.md``):

* ``n < TINY_N`` (10^4): always exact ``Flat``; an approximate index buys nothing here
  and IVF/PQ training needs more points than there are.
* ``n < FLAT_MAX_N`` (10^6) and ``4*n*dim`` bytes fit the budget: exact ``Flat``. One
  query reads every vector, so single-query latency grows with ``n*dim``: 1.4 ms at
  2*10^4 x 128 and ~125 ms at 10^6 x 128 here (batches are ~25x cheaper per query).
  Results are exact, but above ~10^5 an interactive service may prefer HNSW.
* ``n < HNSW_MAX_N`` (10^7) and the graph fits the budget (~784 B per 128-d vector):
  ``HNSW32`` with ``efConstruction = 160`` and ``efSearch = 64``: recall@10 0.998 at
  0.36 ms p50 on one thread. FAISS's default ``efConstruction = 40`` builds a graph that
  strands queries in the wrong cluster (recall 0.83-0.93 even at efSearch 256, with
  whole queries at recall 0); 160 fixes it, at ~4-5x the build time. efSearch 32
  already gives 0.988 at 0.21 ms; 64 leaves a margin for embeddings harder than the
  benchmark's.
* otherwise IVF + PQ with an exact re-rank: ``[PCAR{d'},]IVF{nlist},PQ{d'/4}x8,RFlat``,
  ``nlist`` = 4*sqrt(n) rounded to a power of two. PQ alone loses recall (0.5-0.9,
  DESIGN.md §6); re-ranking ``k * k_factor`` candidates against the stored float32
  vectors (``IndexRefineFlat``) brings it back. Inputs wider than ``PCA_MAX_DIM`` are
  reduced by a PCA with random rotation before the coarse quantiser and the PQ (the
  re-rank still uses the full vectors). If the full vectors do not fit the budget the
  re-rank uses 8-bit scalar-quantised copies (``Refine(SQ8)``), and if even those do not
  fit, the PQ codes alone (lower recall: measure it with :func:`recall_at_k`).

On disk, past ``ONDISK_MIN_N`` (10^7; ``choose_index(..., ondisk=True)``): the same IVF-PQ
codes, but the inverted lists live in an ``.ivfdata`` file that is memory-mapped, and the
re-rank reads the version's float16 ``embeddings.npy`` rows instead of float32 copies in RAM
(:mod:`indexer.ondisk`). Measured at 10^7 x 128 (``bench/bench_scale.py``, docs/scale.md,
2 shared cores, warm page cache): the serving process grows by 1.3 B/object of anonymous
memory on opening it (3.6 after batches of 1000 queries) instead of 788 B/object for
HNSW32, with recall@10 0.975 at 0.41 ms p50 per query (``nprobe`` 16, ``k_factor`` 16;
``k_factor`` 8 stops at 0.952 whatever ``nprobe``). At 10^7 the in-memory choices need
5.5 GB (IVF-PQ + RFlat) to 7.9 GB (HNSW32) of RAM, the on-disk one 13-36 MB plus page
cache for ``index.ivfdata`` (400 MB) and ``embeddings.npy`` (2.6 GB). Below 10^7 HNSW32
fits a small node and answers in ~0.3 ms with recall ~1.0, and needs no page cache to stay
fast, so it stays the choice there. ``IndexSpec.storage == "ondisk"`` marks such a spec,
whose factory has no ``RFlat``/``Refine`` (the re-rank is :mod:`indexer.ondisk`'s, against
float16 rows).

Build seeds fix the training sample and the k-means/PQ initialisation; HNSW insertion with
more than one thread is not bit-reproducible (FAISS adds in parallel).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

TINY_N = 10_000
FLAT_MAX_N = 1_000_000
HNSW_MAX_N = 10_000_000
HNSW_M = 32
HNSW_EF_SEARCH = 64
HNSW_EF_CONSTRUCTION = 160  # FAISS default 40 strands queries in the wrong cluster (docstring)
IVF_NPROBE = 32  # 10^6, nlist 4096: recall@10 0.994-0.996 for nprobe 8-32, k_factor 8
IVF_K_FACTOR = 8
PCA_MAX_DIM = 256
QUANTIZER_HNSW_MIN_NLIST = 16_384  # above this a flat coarse quantiser dominates query time
BLAS_THRESHOLD = 20  # queries per batch from which exact search uses BLAS (DESIGN.md §6)
NORM_TOLERANCE = 1e-2  # float16 embeddings.npy rows are unit norm to ~1e-3
ONDISK_MIN_N = 10_000_000  # from here choose_index(..., ondisk=True) picks the on-disk IVF-PQ (docstring)
ONDISK_NPROBE = 16  # 10^7, nlist 16384, PQ32: recall@10 0.949 / 0.952 / 0.952 at nprobe 16 / 32 / 64 (k_factor 8)
ONDISK_K_FACTOR = 16  # ... and 0.975 / 0.978 / 0.978 with k_factor 16 (bench/results/scale_1e7.json)
STORAGES = ("memory", "ondisk")  # IndexSpec.storage: in-RAM FAISS index, or indexer.ondisk

_KNOWN_SEARCH_PARAMS = ("efSearch", "nprobe", "k_factor", "quantizer_efSearch")
_KNOWN_BUILD_PARAMS = ("efConstruction",)


@dataclass(frozen=True)
class IndexSpec:
    """What to build: a FAISS ``index_factory`` string plus its query-time parameters.

    ``search_params`` keys: ``efSearch`` (HNSW), ``nprobe`` (IVF), ``k_factor`` (re-rank
    ``k * k_factor`` candidates), ``quantizer_efSearch`` (HNSW coarse quantiser).
    ``build_params`` keys: ``efConstruction`` (HNSW beam width while inserting; the factory
    string cannot carry it). ``train_size`` is the number of vectors sampled (seeded) to
    train IVF/PQ/PCA; ``None`` for indexes that need no training. ``storage`` is ``"memory"``
    (a FAISS index built by :func:`build_index`) or ``"ondisk"`` (IVF-PQ with on-disk lists
    and a float16 re-rank, built by ``indexer.ondisk.build_ondisk``); JSON written before the
    field existed has no ``storage`` key and reads as ``"memory"``.
    """

    factory: str
    metric: str = "ip"
    search_params: dict[str, float] = field(default_factory=dict)
    train_size: int | None = None
    build_params: dict[str, float] = field(default_factory=dict)
    storage: str = "memory"

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"IndexSpec.storage must be one of {list(STORAGES)}, got {self.storage!r}")
        if self.metric != "ip":
            raise ValueError(f"IndexSpec.metric must be 'ip' (cosine on unit vectors), got {self.metric!r}")
        unknown = sorted(set(self.search_params) - set(_KNOWN_SEARCH_PARAMS))
        if unknown:
            raise ValueError(f"unknown search parameter(s) {unknown}; known: {list(_KNOWN_SEARCH_PARAMS)}")
        unknown = sorted(set(self.build_params) - set(_KNOWN_BUILD_PARAMS))
        if unknown:
            raise ValueError(f"unknown build parameter(s) {unknown}; known: {list(_KNOWN_BUILD_PARAMS)}")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"train_size must be positive or None, got {self.train_size}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping for the artifact manifest (``storage`` only when not "memory",
        so in-memory specs keep the JSON they always had)."""
        out: dict[str, Any] = {
            "factory": self.factory,
            "metric": self.metric,
            "search_params": dict(sorted(self.search_params.items())),
            "train_size": self.train_size,
            "build_params": dict(sorted(self.build_params.items())),
        }
        if self.storage != "memory":
            out["storage"] = self.storage
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> IndexSpec:
        """Inverse of :meth:`to_json`; also accepts the JSON text. Unknown keys are an error."""
        obj = json.loads(data) if isinstance(data, str) else dict(data)
        fields = {"factory", "metric", "search_params", "train_size", "build_params", "storage"}
        extra = sorted(set(obj) - fields)
        if extra:
            raise ValueError(f"unknown IndexSpec field(s) {extra}")
        if "factory" not in obj:
            raise ValueError("IndexSpec JSON has no 'factory'")
        return cls(
            factory=str(obj["factory"]),
            metric=str(obj.get("metric", "ip")),
            search_params=dict(obj.get("search_params") or {}),
            train_size=obj.get("train_size"),
            build_params=dict(obj.get("build_params") or {}),
            storage=str(obj.get("storage", "memory")),
        )


# ---------------------------------------------------------------- choice


def ivf_nlist(n: int) -> int:
    """Number of IVF lists: 4*sqrt(n) rounded to the nearest power of two, >= 1 point per 39."""
    nlist = 2 ** round(math.log2(max(4.0 * math.sqrt(n), 1.0)))
    while nlist > 1 and nlist * 39 > n:  # FAISS k-means wants >= 39 training points per list
        nlist //= 2
    return nlist


def hnsw_bytes_per_vector(dim: int, m: int = HNSW_M) -> float:
    """float32 vector + level-0 links (2*M int32) + upper levels (~M/ln M per node, ~5 %)."""
    return 4.0 * dim + 8.0 * m * 1.05 + 16.0


def ondisk_spec(n: int, dim: int) -> IndexSpec:
    """The on-disk IVF-PQ for ``n`` unit vectors of width ``dim`` (``indexer.ondisk``).

    Same coarse quantiser, PQ and PCA rule as the in-memory IVF-PQ of :func:`choose_index`,
    without ``RFlat``: the re-rank of ``k * k_factor`` candidates reads float16 rows from disk.
    """
    if n < 1 or dim < 1:
        raise ValueError(f"need n >= 1 and dim >= 1, got n={n}, dim={dim}")
    nlist = ivf_nlist(n)
    coded_dim = min(dim, PCA_MAX_DIM)
    m = max(d for d in range(1, max(coded_dim // 4, 1) + 1) if coded_dim % d == 0)
    parts = [f"PCAR{coded_dim}"] if coded_dim < dim else []
    quantizer = "_HNSW32" if nlist >= QUANTIZER_HNSW_MIN_NLIST else ""
    parts += [f"IVF{nlist}{quantizer}", f"PQ{m}x8"]
    params: dict[str, float] = {"nprobe": ONDISK_NPROBE, "k_factor": ONDISK_K_FACTOR}
    if quantizer:
        params["quantizer_efSearch"] = 2 * ONDISK_NPROBE
    train_size = min(n, max(50 * nlist, 65_536))
    return IndexSpec(",".join(parts), search_params=params, train_size=train_size, storage="ondisk")


def choose_index(n: int, dim: int, memory_budget_bytes: int | None = None, *, ondisk: bool = False) -> IndexSpec:
    """Pick an index for ``n`` unit vectors of width ``dim`` (thresholds: module docstring).

    ``ondisk=True`` (the caller can build and serve :mod:`indexer.ondisk` indexes): from
    ``ONDISK_MIN_N`` on, or where the budget holds neither HNSW nor float32 re-rank copies,
    the on-disk IVF-PQ of :func:`ondisk_spec`.
    """
    if n < 1 or dim < 1:
        raise ValueError(f"need n >= 1 and dim >= 1, got n={n}, dim={dim}")
    if memory_budget_bytes is not None and memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be positive, got {memory_budget_bytes}")

    def fits(nbytes: float) -> bool:
        return memory_budget_bytes is None or nbytes <= memory_budget_bytes

    if n < TINY_N or (n < FLAT_MAX_N and fits(4.0 * n * dim)):
        return IndexSpec("Flat")
    if n < HNSW_MAX_N and fits(n * hnsw_bytes_per_vector(dim)):
        return IndexSpec(
            f"HNSW{HNSW_M}",
            search_params={"efSearch": HNSW_EF_SEARCH},
            build_params={"efConstruction": HNSW_EF_CONSTRUCTION},
        )

    nlist = ivf_nlist(n)
    coded_dim = min(dim, PCA_MAX_DIM)
    m = max(d for d in range(1, max(coded_dim // 4, 1) + 1) if coded_dim % d == 0)
    if ondisk and (n >= ONDISK_MIN_N or not fits(n * (m + 8.0) + 4.0 * n * dim)):
        return ondisk_spec(n, dim)
    parts = [f"PCAR{coded_dim}"] if coded_dim < dim else []
    quantizer = "_HNSW32" if nlist >= QUANTIZER_HNSW_MIN_NLIST else ""
    parts.append(f"IVF{nlist}{quantizer}")
    parts.append(f"PQ{m}x8")
    params: dict[str, float] = {"nprobe": IVF_NPROBE}
    if quantizer:
        params["quantizer_efSearch"] = 2 * IVF_NPROBE
    codes = n * (m + 8.0)  # PQ code + int64 id per vector in the inverted lists
    if fits(codes + 4.0 * n * dim):
        parts.append("RFlat")
        params["k_factor"] = IVF_K_FACTOR
    elif fits(codes + 1.0 * n * dim):
        parts.append("Refine(SQ8)")
        params["k_factor"] = IVF_K_FACTOR
    train_size = min(n, max(50 * nlist, 65_536))
    return IndexSpec(",".join(parts), search_params=params, train_size=train_size)


# ---------------------------------------------------------------- building


@contextlib.contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _configure_faiss() -> None:
    # DESIGN.md §6: faiss-cpu 1.15.1 ships a threshold of 128000 queries, so every realistic
    # batch took the scalar loop (~10x slower); from 20 queries on, exact search (ground
    # truth, Flat) uses BLAS. The setting is process-global, so every entry point sets it.
    faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD


def _check_vectors(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as C-contiguous float32 (N, D) or raise ValueError naming the problem."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (N, D) array, got shape {arr.shape}"
            + (" (use x.reshape(1, -1) for one vector)" if arr.ndim == 1 else "")
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"dimension mismatch: {name} has D={arr.shape[1]}, index expects D={dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.shape[0] == 0:
        return arr
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{name} has {bad.size} row(s) with NaN or inf values (first row {bad[0]})")
    norms = np.linalg.norm(arr, axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{name} must be L2-normalised: {int(off.sum())} row(s) have |norm - 1| > "
            f"{NORM_TOLERANCE} (row {i} has norm {norms[i]:.4g})"
        )
    return arr


def _walk(index: faiss.Index) -> Iterator[Any]:
    """Yield ``index`` (downcast) and every sub-index FAISS nests inside it."""
    idx = faiss.downcast_index(index)
    yield idx
    if isinstance(idx, faiss.IndexRefine):
        yield from _walk(idx.base_index)
    elif isinstance(idx, faiss.IndexPreTransform):
        yield from _walk(idx.index)
    elif isinstance(idx, faiss.IndexIVF):
        yield from _walk(idx.quantizer)


def apply_search_params(index: faiss.Index, spec: IndexSpec) -> None:
    """Set ``spec.search_params`` on ``index`` and its sub-indexes; unused ones are an error."""
    used: set[str] = set()
    params = spec.search_params
    top = True
    for idx in _walk(index):
        if isinstance(idx, faiss.IndexRefine) and "k_factor" in params:
            idx.k_factor = float(params["k_factor"])
            used.add("k_factor")
        elif isinstance(idx, faiss.IndexIVF) and "nprobe" in params:
            idx.nprobe = int(params["nprobe"])
            used.add("nprobe")
        elif isinstance(idx, faiss.IndexHNSW):
            name = "efSearch" if top else "quantizer_efSearch"
            if name in params:
                idx.hnsw.efSearch = int(params[name])
                used.add(name)
        # Only a top-level (or pre-transformed / refined) HNSW is the main index.
        if not isinstance(idx, (faiss.IndexRefine, faiss.IndexPreTransform)):
            top = False
    unused = sorted(set(params) - used)
    if unused:
        raise ValueError(f"search parameter(s) {unused} do not apply to index {spec.factory!r}")


def build_index(vectors: np.ndarray, spec: IndexSpec, *, seed: int = 0, threads: int | None = None) -> faiss.Index:
    """Build ``spec`` over ``vectors`` (N, D) unit-norm float32; row i gets id i.

    Training (IVF, PQ, PCA) uses ``min(N, spec.train_size)`` rows drawn with ``seed``;
    ``threads`` caps OpenMP threads for the build (None: FAISS default).
    """
    if spec.storage != "memory":
        raise ValueError(
            f"spec {spec.factory!r} has storage {spec.storage!r}: build it with indexer.ondisk.build_ondisk"
        )
    x = _check_vectors(vectors, "vectors")
    n, dim = x.shape
    if n == 0:
        raise ValueError("cannot build an index over zero vectors")
    _configure_faiss()
    try:
        index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"FAISS cannot build factory string {spec.factory!r}: {exc}") from exc
    used: set[str] = set()
    for idx in _walk(index):  # seed every k-means FAISS will run, set build parameters
        if isinstance(idx, faiss.IndexIVF):
            idx.cp.seed = seed
            nlist = idx.nlist
            if nlist > min(n, spec.train_size or n):
                raise ValueError(
                    f"{spec.factory!r} needs at least {nlist} training vectors "
                    f"(one per IVF list), got {min(n, spec.train_size or n)}"
                )
        if isinstance(idx, faiss.IndexHNSW) and "efConstruction" in spec.build_params:
            idx.hnsw.efConstruction = int(spec.build_params["efConstruction"])
            used.add("efConstruction")
        pq = getattr(idx, "pq", None)
        if pq is not None:
            pq.cp.seed = seed
        if getattr(idx, "do_polysemous_training", False):
            # The factory turns on polysemous training for PQ: ~50 s for 10^4 training
            # vectors, and only useful for polysemous filtering, which we do not use.
            idx.do_polysemous_training = False
    unused = sorted(set(spec.build_params) - used)
    if unused:
        raise ValueError(f"build parameter(s) {unused} do not apply to index {spec.factory!r}")
    with _omp_threads(threads):
        if not index.is_trained:
            size = min(n, spec.train_size or n)
            rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
            index.train(x[rows])
        index.add(x)
    apply_search_params(index, spec)
    return index


# ---------------------------------------------------------------- querying


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of each query: ``(1 - cosine) (Q, k) float32, ids (Q, k) int64``.

    Rows are sorted nearest first. Missing hits (``k`` > index size) have id -1, distance inf.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    q = _check_vectors(queries, "queries", dim=index.d)
    if q.shape[0] == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    _configure_faiss()
    sims, ids = index.search(q, k)
    dist = (1.0 - sims).astype(np.float32)
    dist[ids < 0] = np.inf
    return dist, ids.astype(np.int64, copy=False)


def intersection_recall(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (both (Q, k))."""
    if approx_ids.shape != exact_ids.shape or approx_ids.ndim != 2:
        raise ValueError(f"id arrays must have equal (Q, k) shapes, got {approx_ids.shape} and {exact_ids.shape}")
    hits = (approx_ids[:, :, None] == exact_ids[:, None, :]) & (exact_ids[:, None, :] >= 0)
    return float(hits.any(axis=1).sum() / exact_ids.size)


def recall_at_k(index: faiss.Index, vectors: np.ndarray, *, k: int = 10, sample: int = 1000, seed: int = 0) -> float:
    """recall@k of ``index`` against exact inner-product search over ``vectors``.

    ``vectors`` are the rows the index was built from (row i = id i); ``sample`` of them,
    drawn with ``seed``, serve as queries (each finds itself in both result lists).
    """
    x = _check_vectors(vectors, "vectors", dim=index.d)
    n = x.shape[0]
    if n != index.ntotal:
        raise ValueError(f"index holds {index.ntotal} vectors but {n} were given")
    if n == 0:
        raise ValueError("cannot measure recall on an empty index")
    k = min(k, n)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    queries = x[rows]
    _configure_faiss()
    _, exact = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    _, approx = search(index, queries, k)
    return intersection_recall(approx, exact)


# ---------------------------------------------------------------- files


def save_index(index: faiss.Index, path: str | os.PathLike[str]) -> None:
    """Write ``index`` to ``path`` atomically: a temp file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # persist the rename; not possible on every platform
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_index(path: str | os.PathLike[str], spec: IndexSpec, *, mmap: bool = False) -> faiss.Index:
    """Read an index written by :func:`save_index` and apply ``spec.search_params``.

    ``mmap=True`` maps the stored vectors read-only instead of copying them into memory
    (cheap start-up for large Flat/HNSW indexes; the index can then not be added to).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
    index = faiss.read_index(str(path), flags)
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"{path}: index metric is {index.metric_type}, expected inner product")
    apply_search_params(index, spec)
    return index
