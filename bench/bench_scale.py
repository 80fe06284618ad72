"""Can one node serve 10^7 objects from an on-disk IVF-PQ at <= 64 B/object of RAM and recall@10 >= 0.95?

Generates ``--n`` synthetic clustered 128-d unit vectors (the Gaussian mixture of
bench_index_types: clusters with their own spread in a low-rank subspace, seeded) blockwise
into a float16 ``vectors.npy`` under ``--work`` (the form of a version's ``embeddings.npy``),
computes exact top-10 ground truth for ``--queries`` fresh draws blockwise over the memmap,
then measures side by side, with the same queries:

* the on-disk IVF-PQ of ``indexer.ondisk`` at ``--n``: build time (train, parallel fill,
  merge), recall@10 after the float16 re-rank and single-query latency (one thread) for each
  ``--nprobe``, and the RAM it costs the serving process;
* ``HNSW32`` (index_types' settings: efConstruction 160, efSearch 64) at ``--hnsw-n``;
* Milvus Lite (``pymilvus.MilvusClient(<work>/milvus.db)``, FLAT index) at ``--milvus-n``.

RAM per object is measured in a fresh child process per index (``--serve``): growth of its
anonymous resident memory (``RssAnon`` of /proc/self/status: heap and anonymous mappings,
i.e. what the process itself holds) from after the imports to after opening the index and
running every query (and, apart, to just after opening it), divided by the object count.
The memory-mapped ``index.ivfdata`` and ``vectors.npy`` pages it touched are page cache,
reported apart (``RssFile`` growth) and not counted: the kernel can drop them, they are
shared between worker processes, and they are the files' size on disk at most. Milvus Lite
(pure Python here) runs inside the benchmark process: its figure is that process's RssAnon
growth across create, insert, load and queries. Latencies are with a warm page cache (the
files were just written and fit this machine's RAM); a cold cache adds a disk read per
probed list and per re-ranked row.

Usage (repository root; the 10^7 run took 27 min on 2 shared cores plus 77 s to generate the
data, and needs ~4 GB of disk under --work; --reuse keeps the data and any index whose build
settings match):
    nohup nice -n 15 .venv/bin/python bench/bench_scale.py --n 10000000 --work /tmp/scale \\
        --out bench/results/scale_1e7.json > /tmp/scale.log 2>&1 &
    .venv/bin/python bench/bench_scale.py --n 20000 --hnsw-n 5000 --milvus-n 2000 --dim 32 \\
        --nlist 64 --train-size 5000 --pq-m 8 --queries 30 --work /tmp/scale-smoke --out /tmp/s.json  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    command_line,
    cpus_usable,
    git_sha,
    latency_summary,
    log,
    memory_gb,
    platform_machine,
    prefer_passive_omp,
    require_measured,
    utc_now_iso,
    write_json,
)

prefer_passive_omp()  # before FAISS loads libgomp

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from bench_index_types import make_mixture, sample  # noqa: E402

from indexer.index_types import (  # noqa: E402
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    IndexSpec,
    build_index,
    intersection_recall,
    ivf_nlist,
    save_index,
    search,
)
from indexer.ondisk import build_ondisk, open_ondisk  # noqa: E402

K = 10
TARGET_RECALL = 0.95
TARGET_BYTES = 64.0
BLOCK = 1 << 20  # rows per generated / ground-truth block (256 MB of float16 at 128-d)


# ---------------------------------------------------------------- data


def generate(args: argparse.Namespace, work: Path) -> tuple[Path, np.ndarray, float]:
    """float16 vectors.npy (reused if its settings match) and float32 queries; seconds spent."""
    key = {k: getattr(args, k) for k in ("n", "dim", "clusters", "rank", "iso", "seed", "queries")}
    path, meta = work / "vectors.npy", work / "vectors.json"
    mix = make_mixture(args.dim, args.clusters, args.rank, args.iso, args.seed)
    xq = sample(mix, args.queries, seed=np.random.default_rng([args.seed, 2]).integers(2**63))
    if path.exists() and meta.exists() and json.loads(meta.read_text()) == key:
        log(f"reusing {path}")
        return path, xq, 0.0
    t0 = time.perf_counter()
    meta.unlink(missing_ok=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(args.n, args.dim))
    for b, s in enumerate(range(0, args.n, BLOCK)):
        m = min(BLOCK, args.n - s)
        block = sample(mix, m, seed=np.random.default_rng([args.seed, 1, b]).integers(2**63))
        out[s : s + m] = block
        log(f"generated {s + m}/{args.n}")
    out.flush()
    del out
    meta.write_text(json.dumps(key))
    return path, xq, time.perf_counter() - t0


def ground_truth(xb: np.ndarray, xq: np.ndarray, sizes: list[int]) -> dict[int, np.ndarray]:
    """Exact top-K ids among the first s rows, for each s in ``sizes``, in one blockwise pass."""
    n = xb.shape[0]
    cuts = sorted(set(range(0, n, BLOCK)) | set(sizes) | {n})
    best_d = np.full((len(xq), K), -np.inf, np.float32)
    best_i = np.full((len(xq), K), -1, np.int64)
    out: dict[int, np.ndarray] = {}
    for s, e in zip(cuts[:-1], cuts[1:], strict=True):
        d, i = faiss.knn(xq, np.asarray(xb[s:e], dtype=np.float32), min(K, e - s), metric=faiss.METRIC_INNER_PRODUCT)
        d_all = np.concatenate([best_d, d], axis=1)
        i_all = np.concatenate([best_i, i + s], axis=1)
        top = np.argsort(-d_all, axis=1, kind="stable")[:, :K]
        best_d, best_i = np.take_along_axis(d_all, top, 1), np.take_along_axis(i_all, top, 1)
        if e in sizes:
            out[e] = best_i.copy()
        if e % (8 * BLOCK) == 0:
            log(f"ground truth {e}/{n}")
    return out


# ---------------------------------------------------------------- serving child


def _mem() -> dict[str, int]:
    """Resident memory of this process in bytes: RssAnon, RssFile (/proc/self/status)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = int(val.split()[0]) * 1024
    return out


def serve(args: argparse.Namespace) -> None:
    """Child: open one index, sweep its parameters, time single queries; JSON to --serve-out."""
    work = Path(args.work)
    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = 20
    q = np.load(work / "queries.npy")
    gt = np.load(work / f"gt_{args.serve_n}.npy")
    before = _mem()
    t0 = time.perf_counter()
    if args.serve == "ondisk":
        index: Any = open_ondisk(
            work / "ondisk",
            np.load(work / "vectors.npy", mmap_mode="r"),
            {"nprobe": args.nprobe[0], "k_factor": args.k_factor[0]},
        )
        sweep = [
            {"nprobe": p, "k_factor": kf, "prefetch_threads": t}
            for t in args.prefetch
            for p in args.nprobe
            for kf in args.k_factor
        ]
    else:
        index = faiss.read_index(str(work / "hnsw.faiss"))
        sweep = [{"efSearch": e} for e in args.ef_search]
    open_s = time.perf_counter() - t0
    opened = _mem()

    def set_params(params: dict[str, int]) -> None:
        if args.serve == "ondisk":
            index.configure(nprobe=params["nprobe"], k_factor=params["k_factor"],
                            prefetch_threads=params.get("prefetch_threads", 0),
                            quantizer_efSearch=None if index.quantizer_efSearch is None
                            else max(2 * params["nprobe"], 16))
        else:
            index.hnsw.efSearch = params["efSearch"]

    def one(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return index.search(x, K) if args.serve == "ondisk" else search(index, x, K)

    recalls = []
    for params in sweep:  # recall: all queries in one batch per setting
        set_params(params)
        recalls.append(intersection_recall(one(q)[1], gt))
    # Latency: settings interleaved query by query, so that load from other jobs on the shared
    # cores falls on every setting alike instead of on whichever ran during a busy minute.
    nlat = min(args.latency_queries, len(q))
    ms = np.empty((len(sweep), nlat))
    for i in range(-min(args.warmup, len(q)), nlat):
        for j, params in enumerate(sweep):
            set_params(params)
            t = time.perf_counter_ns()
            one(q[i : i + 1] if i >= 0 else q[len(q) + i : len(q) + i + 1])
            if i >= 0:
                ms[j, i] = (time.perf_counter_ns() - t) / 1e6
    rows = []
    for j, params in enumerate(sweep):
        rows.append(
            {
                "params": params,
                "recall_at_10": recalls[j],
                "latency_1_thread": latency_summary(ms[j]),
                "timed_queries": nlat,
            }
        )
        log(f"{args.serve} {params}: recall@10 {recalls[j]:.4f}, p50 {np.median(ms[j]):.3f} ms")
    after = _mem()
    n = int(index.ntotal)
    res = {
        "n": n,
        "open_s": open_s,
        "sweep": rows,
        "mem_before": before,
        "mem_after": after,
        "anon_growth_bytes": after["RssAnon"] - before["RssAnon"],
        "file_rss_growth_bytes": after["RssFile"] - before["RssFile"],
        "anon_bytes_per_object": (after["RssAnon"] - before["RssAnon"]) / n,
        "anon_bytes_per_object_after_open": (opened["RssAnon"] - before["RssAnon"]) / n,
        "loadavg_1min_end": os.getloadavg()[0],
    }
    Path(args.serve_out).write_text(json.dumps(res))


def run_child(kind: str, n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out = work / f"serve_{kind}.json"
    argv = [
        sys.executable,
        __file__,
        "--serve",
        kind,
        "--serve-n",
        str(n),
        "--serve-out",
        str(out),
        "--work",
        str(work),
        "--warmup",
        str(args.warmup),
        "--latency-queries",
        str(args.latency_queries),
        "--nprobe",
        *map(str, args.nprobe),
        "--k-factor",
        *map(str, args.k_factor),
        "--ef-search",
        *map(str, args.ef_search),
        "--prefetch",
        *map(str, args.prefetch),
    ]
    subprocess.run(argv, check=True)
    return dict(json.loads(out.read_text()))


def pick(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    """Fastest setting that meets the recall target, else the most accurate one."""
    ok = [r for r in sweep if r["recall_at_10"] >= TARGET_RECALL]
    if ok:
        return min(ok, key=lambda r: r["latency_1_thread"]["p50_ms"])
    return max(sweep, key=lambda r: r["recall_at_10"])


# ---------------------------------------------------------------- Milvus Lite


def milvus(xb: np.ndarray, xq: np.ndarray, gt: np.ndarray, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import psutil
    from pymilvus import DataType, MilvusClient

    db = work / "milvus.db"
    if db.exists():
        shutil.rmtree(db) if db.is_dir() else db.unlink()
    n = xb.shape[0]
    before = _mem()
    t0 = time.perf_counter()
    client = MilvusClient(str(db))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=xb.shape[1])
    ip = client.prepare_index_params()
    ip.add_index(field_name="vec", index_type=args.milvus_index, metric_type="IP")
    client.create_collection("bench", schema=schema, index_params=ip)
    for s in range(0, n, 5000):
        block = np.asarray(xb[s : s + 5000], dtype=np.float32)
        client.insert("bench", [{"id": s + j, "vec": v.tolist()} for j, v in enumerate(block)])
    client.load_collection("bench")
    build_s = time.perf_counter() - t0

    def one(x: np.ndarray) -> list[int]:
        hits = client.search("bench", data=[x.tolist()], limit=K, anns_field="vec")[0]
        return [int(h["id"]) for h in hits] + [-1] * (K - len(hits))

    nq = min(args.milvus_queries, len(xq))  # the first nq of the shared queries: Milvus Lite is slow
    xq, gt = xq[:nq], gt[:nq]
    for i in range(min(args.warmup, nq)):
        one(xq[i])
    ids = np.empty((nq, K), np.int64)
    ms = np.empty(nq)  # each query is timed in the recall pass itself (seconds per query at 10^5)
    for i in range(nq):
        t = time.perf_counter_ns()
        ids[i] = one(xq[i])
        ms[i] = (time.perf_counter_ns() - t) / 1e6
    recall = intersection_recall(ids, gt)
    after = _mem()
    server_rss = sum(c.memory_info().rss for c in psutil.Process().children(recursive=True))
    client.close()
    log(f"milvus lite {args.milvus_index} at {n}: recall@10 {recall:.4f}, p50 {np.median(ms):.3f} ms")
    return {
        "n": n,
        "index_type": args.milvus_index,
        "metric": "IP",
        "build_s": build_s,
        "sweep": [
            {"params": {}, "recall_at_10": recall, "latency_1_thread": latency_summary(ms), "timed_queries": len(ms)}
        ],
        "anon_growth_bytes": after["RssAnon"] - before["RssAnon"],
        "anon_bytes_per_object": (after["RssAnon"] - before["RssAnon"]) / n,
        "server_process_rss_bytes": server_rss,
        "ram_is": "Milvus Lite runs in this process (pure Python over numpy/FAISS): RssAnon growth of the "
        "benchmark process across create, insert, load and queries, / objects",
        "latency_is": "client.search with one vector, wall time, first --milvus-queries queries",
    }


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    threads = cpus_usable() or 1
    faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = 20
    path, xq, gen_s = generate(args, work)
    xb = np.load(path, mmap_mode="r")
    np.save(work / "queries.npy", xq)
    hnsw_n, milvus_n = min(args.hnsw_n, args.n), min(args.milvus_n, args.n)
    t0 = time.perf_counter()
    gt = ground_truth(xb, xq, sorted({args.n, hnsw_n, milvus_n}))
    gt_s = time.perf_counter() - t0
    for size, ids in gt.items():
        np.save(work / f"gt_{size}.npy", ids)
    log(f"data {gen_s:.0f} s, ground truth {gt_s:.0f} s")

    # on-disk IVF-PQ at n
    nlist = args.nlist or ivf_nlist(args.n)
    quantizer = "_HNSW32" if nlist >= 4096 else ""
    spec = IndexSpec(
        f"IVF{nlist}{quantizer},PQ{args.pq_m}x8",
        storage="ondisk",
        search_params={"nprobe": args.nprobe[0], "k_factor": args.k_factor[0]},
        train_size=min(args.train_size, args.n),
    )
    prev = json.loads((work / "partial.json").read_text()) if args.reuse and (work / "partial.json").exists() else {}
    old = prev.get("ondisk", {})
    reused: dict[str, str] = {}
    same = {k: v for k, v in spec.to_json().items() if k != "search_params"}  # query-time params may differ
    old_spec = {k: v for k, v in old.get("spec", {}).items() if k != "search_params"}
    if old.get("n") == args.n and old_spec == same and (work / "ondisk" / "ondisk.json").exists():
        meta = json.loads((work / "ondisk" / "ondisk.json").read_text())
        build_s = old["build_s"]
        reused["ondisk"] = "build figures from the run that wrote " + str(work / "partial.json")
        log(f"reusing the on-disk index in {work / 'ondisk'} (built in {build_s:.0f} s)")
    else:
        shutil.rmtree(work / "ondisk", ignore_errors=True)
        t0 = time.perf_counter()
        meta = build_ondisk(xb, work / "ondisk", spec, seed=args.seed, processes=args.processes)
        build_s = time.perf_counter() - t0
        log(f"on-disk build {build_s:.0f} s: {meta['seconds']}")
    ondisk = {
        "n": args.n,
        "spec": spec.to_json(),
        "build_s": build_s,
        "build_seconds": meta["seconds"],
        "processes": meta["processes"],
        "gpu_kmeans": meta["gpu"],
        "train_rows": meta["train_rows"],
        "ivfdata_bytes": meta["ivfdata_bytes"],
        "index_file_bytes": meta["index_bytes"],
        "embeddings_bytes": path.stat().st_size,
        **run_child("ondisk", args.n, args, work),
    }

    write_json(work / "partial.json", {**prev, "ondisk": ondisk})  # a late crash leaves the long part on disk

    # HNSW32 at hnsw_n
    hspec = IndexSpec(
        f"HNSW{HNSW_M}",
        search_params={"efSearch": HNSW_EF_SEARCH},
        build_params={"efConstruction": HNSW_EF_CONSTRUCTION},
    )
    old = prev.get("hnsw", {})
    if old.get("n") == hnsw_n and old.get("spec") == hspec.to_json() and (work / "hnsw.faiss").exists():
        hbuild = old["build_s"]
        reused["hnsw"] = "build figures from the run that wrote " + str(work / "partial.json")
        log(f"reusing {work / 'hnsw.faiss'} (built in {hbuild:.0f} s)")
    else:
        t0 = time.perf_counter()
        hindex = build_index(np.asarray(xb[:hnsw_n], dtype=np.float32), hspec, seed=args.seed, threads=threads)
        hbuild = time.perf_counter() - t0
        save_index(hindex, work / "hnsw.faiss")
        del hindex
        log(f"HNSW{HNSW_M} at {hnsw_n}: built in {hbuild:.0f} s")
    hnsw = {
        "n": hnsw_n,
        "spec": hspec.to_json(),
        "build_s": hbuild,
        "index_file_bytes": (work / "hnsw.faiss").stat().st_size,
        **run_child("hnsw", hnsw_n, args, work),
    }

    write_json(work / "partial.json", {**prev, "ondisk": ondisk, "hnsw": hnsw})
    mil = milvus(xb[:milvus_n], xq, gt[milvus_n], args, work) if milvus_n > 0 else None

    best = {"ondisk": pick(ondisk["sweep"]), "hnsw": pick(hnsw["sweep"])}
    if mil:
        best["milvus_lite"] = mil["sweep"][0]
    p50 = {k: v["latency_1_thread"]["p50_ms"] for k, v in best.items()}
    require_measured(
        "scale",
        objects=args.n,
        queries=len(xq),
        ondisk_p50_ms=p50["ondisk"],
        hnsw_p50_ms=p50["hnsw"],
        ondisk_recall=best["ondisk"]["recall_at_10"],
    )
    ratios = {
        "latency_p50_ondisk_over_hnsw": p50["ondisk"] / p50["hnsw"],
        "ram_per_object_hnsw_over_ondisk": hnsw["anon_bytes_per_object"] / max(ondisk["anon_bytes_per_object"], 1e-9),
        "objects_ondisk_over_hnsw": args.n / hnsw_n,
    }
    if mil:
        ratios["latency_p50_milvus_lite_over_ondisk"] = p50["milvus_lite"] / p50["ondisk"]
        ratios["objects_ondisk_over_milvus_lite"] = args.n / milvus_n
    return {
        "benchmark": "scale",
        "question": "on-disk IVF-PQ at --n: RAM <= 64 B/object and recall@10 >= 0.95? next to HNSW32 and Milvus Lite",
        "git_sha": git_sha(),
        "date": utc_now_iso(),
        "command": command_line(".venv/bin/python", "bench/bench_scale.py"),
        "machine": platform_machine(
            cpus_usable=cpus_usable(),
            memory_gb=memory_gb(),
            nice=os.nice(0),
            gpus=faiss.get_num_gpus(),
            faiss=faiss.__version__,
            numpy=np.__version__,
            note="2 cores shared with other engineers' jobs; no GPU",
        ),
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if not k.startswith("serve")
        },
        "data": {
            "vectors": str(path),
            "generate_s": gen_s,
            "bytes_on_disk": path.stat().st_size,
            "queries_are": "held-out draws from the same mixture",
        },
        "ground_truth_s": gt_s,
        "ram_is": "RssAnon growth of a fresh serving process from after imports to after opening the index and "
        "running every query, / objects; page cache of mapped files (RssFile) reported apart, not counted",
        "latency_is": "wall time of one single-query search call, one thread, warm page cache",
        "ondisk": ondisk,
        "hnsw": hnsw,
        "milvus_lite": mil,
        "best": best,
        "ratios": ratios,
        "targets": {
            "ondisk_ram_le_64_bytes": ondisk["anon_bytes_per_object"] <= TARGET_BYTES,
            "ondisk_recall_ge_0.95": best["ondisk"]["recall_at_10"] >= TARGET_RECALL,
        },
        "reused_builds": reused,
        "total_s": time.perf_counter() - t_all,
        "repeats": 1,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=10_000_000, help="objects in the on-disk IVF-PQ")
    p.add_argument(
        "--hnsw-n", type=int, default=1_000_000, help="objects in the HNSW32 comparison (746 s at 10^6 here)"
    )
    p.add_argument("--milvus-n", type=int, default=100_000, help="objects in the Milvus Lite comparison (0: skip)")
    p.add_argument("--milvus-index", default="FLAT", help="Milvus Lite index type")
    p.add_argument("--milvus-queries", type=int, default=100, help="the first N queries go to Milvus Lite")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=500, help="queries timed one at a time per setting")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--iso", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nlist", type=int, default=None, help="IVF lists (default index_types.ivf_nlist(n))")
    p.add_argument("--pq-m", type=int, default=32, help="PQ sub-quantisers (bytes per code)")
    p.add_argument("--train-size", type=int, default=300_000)
    p.add_argument("--processes", type=int, default=2, help="parallel fill processes")
    p.add_argument("--nprobe", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--k-factor", type=int, nargs="+", default=[8, 16])
    p.add_argument(
        "--prefetch",
        type=int,
        nargs="+",
        default=[0],
        help="OnDiskInvertedLists prefetch threads per search (FAISS default 32; indexer.ondisk default 0)",
    )
    p.add_argument("--ef-search", type=int, nargs="+", default=[HNSW_EF_SEARCH])
    p.add_argument("--work", type=Path, default=Path("/tmp/scale"), help="data, indexes, Milvus db")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the indexes a previous run left in --work (same n and spec) and its build times",
    )
    p.add_argument("--out", type=Path, default=None, help="JSON (default bench/results/scale_n<N>.json)")
    p.add_argument("--serve", choices=["ondisk", "hnsw"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--serve-n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--serve-out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
        return
    for name in ("n", "dim", "queries", "latency_queries", "processes", "train_size", "pq_m"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    out = args.out or RESULTS_DIR / f"scale_n{args.n}.json"
    res = run(args)
    write_json(out, res)
    log(f"wrote {out}")
    print(json.dumps({"best": res["best"], "ratios": res["ratios"], "targets": res["targets"]}, indent=2))


if __name__ == "__main__":
    main()
