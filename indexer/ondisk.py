"""IVF-PQ with on-disk inverted lists and an exact re-rank from float16 rows on disk.

Why (RAM arithmetic, 128-d unit vectors): an in-memory ``HNSW32`` holds the float32 vector
plus its links, ~790 B/object; IVF-PQ with an ``RFlat`` re-rank holds a 32 B PQ code, an
8 B id and a 512 B float32 copy, ~550 B/object. At 10^9 objects that is 550-790 GB of RAM.
Here the PQ codes and ids (``m + 8`` B/object) live in ``index.ivfdata``, memory-mapped by
``faiss.OnDiskInvertedLists``, and the re-rank reads the version's float16 ``embeddings.npy``
(``2 * d`` B/object, also memory-mapped). What stays in the process's own memory is the
coarse quantiser (``nlist * d * 4`` B plus its HNSW links), the PQ codebooks and ~24 B of
list bookkeeping per list: ~12 MB for nlist 16384, i.e. ~1.3 B/object at 10^7 and ~0.01
B/object at 10^9, well under the 64 B/object budget. The mapped files are page cache: the
kernel keeps the lists and rows that queries touch and drops them under pressure, so the
service's RAM no longer grows with the survey, its latency depends on how much of
``ivfdata + embeddings`` (``m + 8 + 2 d`` B/object) the page cache holds.

Build (:func:`build_ondisk`): train the coarse quantiser and PQ on a seeded sample; fill
``processes`` empty copies of the trained index, each with a contiguous range of rows (id =
row number), in parallel processes, each written to a shard file; merge the shards' lists into
one ``index.ivfdata`` (``faiss.contrib.ondisk.merge_ondisk``). The inputs are read in blocks
of ``block_rows`` rows, so a float16 memmap of any size is never held as float32 at once.

Files in ``out_dir``: ``index.faiss`` (quantiser, PQ, list offsets; it names its data file
by its base name only), ``index.ivfdata`` (codes + ids) and ``ondisk.json`` (metadata, the
spec). :func:`open_ondisk` reads ``index.faiss`` with ``faiss.IO_FLAG_ONDISK_SAME_DIR``, so the
data file is looked up next to it: the folder can be renamed or moved (a stage folder
published into ``versions/``).

GPU: where faiss-gpu sees a GPU (``faiss.get_num_gpus() > 0``) and ``use_gpu`` allows, the
k-means of the coarse quantiser (the dominant training cost) runs on it through
``faiss.index_cpu_to_gpu``; everything else, and every test, takes the CPU path.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexer.index_types import (
    NORM_TOLERANCE,
    ONDISK_K_FACTOR,
    ONDISK_NPROBE,
    IndexSpec,
    _check_vectors,
    _configure_faiss,
    _walk,
    ondisk_spec,
)

INDEX_FILE = "index.faiss"
IVFDATA_FILE = "index.ivfdata"
META_FILE = "ondisk.json"
FORMAT_VERSION = 1
BLOCK_ROWS = 65_536  # rows read, converted to float32 and added at a time (32 MB at 128-d)
SEARCH_PARAMS = ("nprobe", "k_factor", "quantizer_efSearch")

PathLike = str | os.PathLike[str]
Source = tuple[str, str, int, tuple[int, int]]  # (path, dtype, byte offset, shape) of a raw row-major file


# ---------------------------------------------------------------- inputs


def _check_array(vectors: Any) -> np.ndarray:
    """``vectors`` as an (N, D) floating array (not copied), or ValueError naming the problem."""
    if not isinstance(vectors, np.ndarray):
        vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (N, D) array, got shape {vectors.shape}")
    if vectors.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"vectors must be float16, float32 or float64, got dtype {vectors.dtype}")
    n, d = vectors.shape
    if n == 0 or d == 0:
        raise ValueError(f"vectors must hold at least one row and one column, got shape {vectors.shape}")
    return vectors


def _unit_rows(raw: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``raw`` (rows ``rows`` of the input) as C-contiguous float32 unit vectors, or ValueError
    naming the first bad row by its row number in the input."""
    x = np.ascontiguousarray(raw, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"vectors row {rows[bad[0]]} has NaN or inf values ({bad.size} such row(s) among {len(rows)} read with it)"
        )
    norms = np.linalg.norm(x, axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        bad = np.flatnonzero(off)
        raise ValueError(
            f"vectors must be L2-normalised: row {rows[bad[0]]} has norm {norms[bad[0]]:.4g} "
            f"(|norm - 1| > {NORM_TOLERANCE}; {bad.size} such row(s) among {len(rows)} read with it)"
        )
    return x


def _block(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``x`` as checked float32 unit vectors."""
    return _unit_rows(x[start:stop], np.arange(start, stop))


def _memmap_source(x: np.ndarray) -> Source | None:
    """The file behind ``x`` if it is a whole C-ordered memmap a child process can reopen."""
    if not isinstance(x, np.memmap) or not x.filename or not x.flags.c_contiguous:
        return None
    src: Source = (str(x.filename), x.dtype.str, int(x.offset), (int(x.shape[0]), int(x.shape[1])))
    try:
        again = _open_source(src)
    except (OSError, ValueError):
        return None
    # A slice of a memmap keeps its parent's offset: compare rows before trusting the file.
    rows = sorted({0, x.shape[0] // 2, x.shape[0] - 1})
    if all(np.array_equal(again[r], x[r], equal_nan=True) for r in rows):
        return src
    return None


def _open_source(src: Source) -> np.ndarray:
    path, dtype, offset, shape = src
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def _spill(x: np.ndarray, path: Path, block_rows: int) -> Source:
    """Write ``x`` (e.g. an in-memory array) blockwise to a raw file that child processes map."""
    dtype = np.float16 if x.dtype == np.float16 else np.float32
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=x.shape)
    for s in range(0, x.shape[0], block_rows):
        out[s : s + block_rows] = x[s : s + block_rows]
    out.flush()
    src: Source = (str(path), out.dtype.str, int(out.offset), (int(x.shape[0]), int(x.shape[1])))
    del out
    return src


# ---------------------------------------------------------------- build


def _resolve_spec(spec: IndexSpec | Mapping[str, Any] | None, n: int, dim: int) -> IndexSpec:
    if spec is None:
        return ondisk_spec(n, dim)
    if isinstance(spec, Mapping):
        spec = IndexSpec.from_json(dict(spec))
    if not isinstance(spec, IndexSpec):
        raise ValueError(f"spec must be an IndexSpec, its JSON mapping or None, got {type(spec).__name__}")
    if spec.storage != "ondisk":
        raise ValueError(f"spec {spec.factory!r} has storage {spec.storage!r}; build_ondisk needs 'ondisk'")
    unknown = sorted(set(spec.search_params) - set(SEARCH_PARAMS))
    if unknown:
        raise ValueError(
            f"search parameter(s) {unknown} do not apply to an on-disk IVF-PQ; known {list(SEARCH_PARAMS)}"
        )
    if spec.build_params:
        raise ValueError(f"build parameter(s) {sorted(spec.build_params)} do not apply to an on-disk IVF-PQ")
    return spec


def _gpu_wanted(use_gpu: bool | None) -> bool:
    available = faiss.get_num_gpus() > 0 if hasattr(faiss, "get_num_gpus") else False
    if use_gpu and not available:
        raise ValueError("use_gpu=True but FAISS sees no GPU (faiss-gpu not installed or no device)")
    return available if use_gpu is None else bool(use_gpu)


def _train(spec: IndexSpec, x: np.ndarray, seed: int, gpu: bool) -> tuple[faiss.Index, int]:
    """An empty, trained index for ``spec`` and the number of training rows used."""
    n, dim = x.shape
    try:
        index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"FAISS cannot build factory string {spec.factory!r}: {exc}") from exc
    if any(isinstance(i, faiss.IndexRefine) for i in _walk(index)):
        raise ValueError(f"{spec.factory!r}: no RFlat/Refine on disk; the re-rank reads the float16 rows")
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError as exc:
        raise ValueError(f"{spec.factory!r} is not an IVF index; on-disk lists need one") from exc
    size = min(n, spec.train_size or n)
    if ivf.nlist > size:
        raise ValueError(f"{spec.factory!r} needs at least {ivf.nlist} training vectors (one per IVF list), got {size}")
    ivf.cp.seed = seed
    for idx in _walk(index):
        pq = getattr(idx, "pq", None)
        if pq is not None:
            pq.cp.seed = seed
        if getattr(idx, "do_polysemous_training", False):
            idx.do_polysemous_training = False  # ~50 s per 10^4 rows, only for polysemous filtering
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    sample = np.empty((size, dim), np.float32)
    for s in range(0, size, BLOCK_ROWS):  # fancy indexing on a memmap reads only these rows
        part = rows[s : s + BLOCK_ROWS]
        sample[s : s + len(part)] = _unit_rows(x[part], part)
    if gpu:  # the k-means assignments dominate training; the trained quantiser stays on the CPU
        res = faiss.StandardGpuResources()
        ivf.clustering_index = faiss.index_cpu_to_gpu(res, 0, faiss.IndexFlatIP(ivf.d))
    index.train(sample)
    if gpu:
        setattr(ivf, "clustering_index", None)  # noqa: B010 (drop the GPU copy; the stubs type it non-None)
    return index, size


def _fill_shard(
    trained: str, source: Source | np.ndarray, start: int, stop: int, out: str, block_rows: int, threads: int
) -> int:
    """Add rows ``start:stop`` (ids = row numbers) to a copy of the trained index; write it to ``out``.

    Runs in a child process (spawned: forking after OpenMP started can hang) or in-process.
    """
    faiss.omp_set_num_threads(threads)
    index = faiss.read_index(trained)
    x = _open_source(source) if isinstance(source, tuple) else source
    for s in range(start, stop, block_rows):
        e = min(stop, s + block_rows)
        index.add_with_ids(_block(x, s, e), np.arange(s, e, dtype=np.int64))
    faiss.write_index(index, out)
    return int(index.ntotal)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def build_ondisk(
    vectors: np.ndarray,
    out_dir: PathLike,
    spec: IndexSpec | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    processes: int = 1,
    block_rows: int = BLOCK_ROWS,
    use_gpu: bool | None = None,
) -> dict[str, Any]:
    """Build the on-disk IVF-PQ over ``vectors`` (N, D) unit rows into ``out_dir``; row i gets id i.

    ``vectors``: float16/float32/float64 array or memmap (``np.load(path, mmap_mode="r")``),
    read ``block_rows`` at a time. ``spec``: an ``IndexSpec`` with ``storage="ondisk"``, its
    JSON mapping, or None for ``index_types.ondisk_spec(N, D)``. ``processes``: parallel fill
    (a memmap is reopened by file in each child; anything else is first spilled to a file in
    ``out_dir``). ``use_gpu``: None = GPU k-means if faiss-gpu sees one. ``out_dir`` is created;
    it must not already hold an index. Returns the metadata also written to ``ondisk.json``.
    """
    x = _check_array(vectors)
    n, dim = x.shape
    spec = _resolve_spec(spec, n, dim)
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    clash = [f for f in (INDEX_FILE, IVFDATA_FILE, META_FILE) if (out / f).exists()]
    if clash:
        raise FileExistsError(f"{out} already holds {clash}; build into an empty folder")
    gpu = _gpu_wanted(use_gpu)
    _configure_faiss()
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".ondisk-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    seconds: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        index, train_rows = _train(spec, x, seed, gpu)
        trained = work / "trained.faiss"
        faiss.write_index(index, str(trained))
        seconds["train"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        processes = min(processes, n)
        bounds = np.linspace(0, n, processes + 1).astype(int)
        shards = [str(work / f"shard-{i:03d}.faiss") for i in range(processes)]
        if processes == 1:
            counts = [_fill_shard(str(trained), x, 0, n, shards[0], block_rows, faiss.omp_get_max_threads())]
        else:
            source = _memmap_source(x) or _spill(x, work / "vectors.npy", block_rows)
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            threads = max(1, cores // processes)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
                futures = [
                    pool.submit(
                        _fill_shard,
                        str(trained),
                        source,
                        int(bounds[i]),
                        int(bounds[i + 1]),
                        shards[i],
                        block_rows,
                        threads,
                    )
                    for i in range(processes)
                ]
                counts = [f.result() for f in futures]
        if sum(counts) != n:
            raise RuntimeError(f"shards hold {sum(counts)} vectors, expected {n}")
        seconds["fill"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        from faiss.contrib.ondisk import merge_ondisk

        ivfdata = out / IVFDATA_FILE
        merge_ondisk(index, shards, str(ivfdata))
        ivf = faiss.extract_index_ivf(index)
        merged: Any = ivf.invlists
        invlists: Any = faiss.downcast_InvertedLists(merged)
        invlists.filename = IVFDATA_FILE  # base name only: open_ondisk looks next to index.faiss
        tmp = work / INDEX_FILE
        faiss.write_index(index, str(tmp))
        nlist, code_size = int(ivf.nlist), int(ivf.code_size)
        del index, ivf, invlists  # unmaps index.ivfdata
        _fsync(ivfdata)
        _fsync(tmp)
        os.replace(tmp, out / INDEX_FILE)
        seconds["merge"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "spec": spec.to_json(),
        "ntotal": n,
        "d": dim,
        "nlist": nlist,
        "code_size": code_size,
        "files": {"index": INDEX_FILE, "ivfdata": IVFDATA_FILE},
        "ivfdata_bytes": (out / IVFDATA_FILE).stat().st_size,
        "index_bytes": (out / INDEX_FILE).stat().st_size,
        "seed": seed,
        "train_rows": train_rows,
        "processes": processes,
        "gpu": gpu,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "faiss": faiss.__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    _fsync(out / META_FILE)
    return meta


# ---------------------------------------------------------------- search


def _at_least(name: str, value: int, low: int) -> int:
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


class OnDiskIVF:
    """k-NN over an on-disk IVF-PQ folder, re-ranked exactly against float16 rows on disk.

    ``search`` fetches ``k * k_factor`` candidates from the IVF-PQ (``nprobe`` lists,
    ``quantizer_efSearch`` for an HNSW coarse quantiser), reads their rows from
    ``embeddings`` (N, D) float16 (a memmap; float32 also works) and keeps the ``k`` with the
    highest inner product. Same conventions as ``index_types.search``: distance = 1 - cosine
    (float32), ids int64, nearest first, id -1 and distance inf where there are fewer hits.

    ``prefetch_threads``: FAISS's ``OnDiskInvertedLists`` starts 32 threads per search call
    to read the probed lists ahead. With the lists in the page cache that is pure overhead:
    5.0 ms instead of 0.12 ms per single query (20k x 32, 2 cores), so the default is 0;
    raise it where the lists sit on a disk that serves parallel reads (NVMe, cold cache).
    The data file is mapped read-only (``IO_FLAG_READ_ONLY``): a published version can live
    on a read-only mount, and nothing here can write into it.
    """

    def __init__(
        self,
        folder: PathLike,
        embeddings: np.ndarray,
        *,
        nprobe: int = ONDISK_NPROBE,
        k_factor: int = ONDISK_K_FACTOR,
        quantizer_efSearch: int | None = None,
        prefetch_threads: int = 0,
    ) -> None:
        self.folder = Path(folder)
        path = self.folder / INDEX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no on-disk index at {path}")
        if not (self.folder / IVFDATA_FILE).is_file():
            raise FileNotFoundError(f"no {IVFDATA_FILE} next to {path}")
        index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"{path}: index metric is {index.metric_type}, expected inner product")
        emb = embeddings
        if not isinstance(emb, np.ndarray) or emb.ndim != 2:
            raise ValueError(f"embeddings must be a 2-D (N, D) array, got {getattr(emb, 'shape', type(emb))}")
        if emb.dtype not in (np.float16, np.float32):
            raise ValueError(f"embeddings must be float16 (or float32), got dtype {emb.dtype}")
        if emb.shape != (index.ntotal, index.d):
            raise ValueError(f"embeddings have shape {emb.shape} but {path} holds {index.ntotal} x {index.d}")
        self._index = index
        self._ivf = faiss.extract_index_ivf(index)
        self.ntotal, self.d, self.nlist = int(index.ntotal), int(index.d), int(self._ivf.nlist)  # fixed once built
        self._hnsw_quantizer = isinstance(faiss.downcast_index(self._ivf.quantizer), faiss.IndexHNSW)
        lists: Any = self._ivf.invlists
        self._lists: Any = faiss.downcast_InvertedLists(lists)
        self.embeddings = emb
        self.k_factor = 1
        self.configure(nprobe=nprobe, k_factor=k_factor, prefetch_threads=prefetch_threads,
                       quantizer_efSearch=quantizer_efSearch)

    def configure(self, *, nprobe: int | None = None, k_factor: int | None = None,
                  prefetch_threads: int | None = None, quantizer_efSearch: int | None = None) -> None:
        """Set search parameters, each checked (None leaves one as it is). nprobe is capped at the
        number of lists; prefetch_threads 0 reads lists in the calling thread (FAISS's own threads cost
        ~5 ms a query with a warm page cache)."""
        if nprobe is not None:
            self._ivf.nprobe = min(_at_least("nprobe", nprobe, 1), self.nlist)
        if k_factor is not None:
            self.k_factor = _at_least("k_factor", k_factor, 1)
        if prefetch_threads is not None:
            self._lists.prefetch_nthread = _at_least("prefetch_threads", prefetch_threads, 0)
        if quantizer_efSearch is not None:
            if not self._hnsw_quantizer:
                raise ValueError("quantizer_efSearch applies only to an HNSW coarse quantiser")
            quantizer: Any = faiss.downcast_index(self._ivf.quantizer)
            quantizer.hnsw.efSearch = _at_least("quantizer_efSearch", quantizer_efSearch, 1)

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe)

    @property
    def prefetch_threads(self) -> int:
        return int(self._lists.prefetch_nthread)

    @property
    def quantizer_efSearch(self) -> int | None:
        """The HNSW coarse quantiser's beam width, None for a flat quantiser."""
        quantizer: Any = faiss.downcast_index(self._ivf.quantizer)
        return int(quantizer.hnsw.efSearch) if self._hnsw_quantizer else None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(1 - cosine) (Q, k) float32, ids (Q, k) int64`` for unit-norm ``queries`` (Q, D)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _check_vectors(queries, "queries", dim=self.d)
        nq = q.shape[0]
        if nq == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        _configure_faiss()
        _, cand = self._index.search(q, k * self.k_factor)  # (Q, k*k_factor) PQ candidates
        valid = cand >= 0
        rows = np.asarray(self.embeddings[np.where(valid, cand, 0).ravel()], dtype=np.float32)
        sims = np.einsum("qcd,qd->qc", rows.reshape(nq, cand.shape[1], self.d), q)  # exact re-rank
        sims[~valid] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(sims, order, axis=1)
        ids = np.take_along_axis(cand, order, axis=1).astype(np.int64, copy=False)
        if ids.shape[1] < k:  # only if k * k_factor < k, which k_factor >= 1 rules out
            raise RuntimeError("fewer candidates than k")
        dist = (1.0 - top).astype(np.float32)
        missing = ~np.isfinite(top)
        dist[missing] = np.inf
        ids[missing] = -1
        return dist, ids


def open_ondisk(
    out_dir: PathLike,
    embeddings: np.ndarray | PathLike,
    params: IndexSpec | Mapping[str, float] | None = None,
    *,
    prefetch_threads: int = 0,
) -> OnDiskIVF:
    """Open a folder written by :func:`build_ondisk` with its float16 ``embeddings`` (N, D).

    ``embeddings``: the array/memmap, or a ``.npy`` path (memory-mapped read-only).
    ``params``: search parameters (``nprobe``, ``k_factor``, ``quantizer_efSearch``), or an
    ``IndexSpec`` whose ``search_params`` are used; None: those stored in ``ondisk.json``.
    """
    folder = Path(out_dir)
    if isinstance(embeddings, (str, os.PathLike)):
        epath = Path(embeddings)
        if not epath.is_file():
            raise FileNotFoundError(f"no embeddings file at {epath}")
        emb: np.ndarray = np.load(epath, mmap_mode="r")
    else:
        emb = embeddings
    if params is None:
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"no {META_FILE} in {folder}; pass params")
        params = json.loads(meta_path.read_text())["spec"].get("search_params", {})
    if isinstance(params, IndexSpec):
        params = params.search_params
    unknown = sorted(set(params) - set(SEARCH_PARAMS))
    if unknown:
        raise ValueError(
            f"search parameter(s) {unknown} do not apply to an on-disk IVF-PQ; known {list(SEARCH_PARAMS)}"
        )
    kwargs = {k: int(v) for k, v in params.items()}
    return OnDiskIVF(folder, emb, prefetch_threads=prefetch_threads, **kwargs)
