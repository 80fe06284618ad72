"""Which FAISS index type reaches recall@10 >= 0.95 at <= 1 ms median latency (one thread)?

For n synthetic clustered unit vectors, builds each index type (exact Flat, HNSW at several
efSearch, IVF-PQ with an exact re-rank at several nprobe, IVF-SQ8) and measures recall@10
against exact search on held-out queries, single-query latency p50/p99 on 1 and 2 threads,
build time and serialized bytes per object; then says which type
``indexer.index_types.choose_index`` picks at that n and whether it meets the target.

Usage (repository root):
    .venv/bin/python bench/bench_index_types.py                      # smoke run, n = 20000
    nice -n 5 .venv/bin/python bench/bench_index_types.py --n 1000000 --dim 128 \\
        --queries 1000 --out bench/results/index_types.json
    .venv/bin/python bench/bench_index_types.py --markdown bench/results/index_types.json

Data: ``--clusters`` Gaussian clusters around random unit centres, sizes log-normal, each
with its own spread (noise norm log-uniform in [0.4, 1.2] of the centre's, i.e. cosine to
the centre ~0.64-0.93) lying mostly in a per-cluster ``--rank``-dimensional subspace plus
``--iso`` isotropic noise (a stand-in for the low intrinsic dimension of image
embeddings), then L2-normalised. Queries are fresh draws from the same mixture, not
database rows. Generated in float32 chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
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

prefer_passive_omp()  # before FAISS loads libgomp (see its docstring)

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from indexer.index_types import (  # noqa: E402
    IndexSpec,
    apply_search_params,
    build_index,
    choose_index,
    intersection_recall,
    ivf_nlist,
    search,
)

TARGET_RECALL = 0.95
TARGET_P50_MS = 1.0
K = 10


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Mixture:
    centres: np.ndarray  # (C, D) unit vectors
    basis: np.ndarray  # (C, rank, D); z @ basis[c] has norm ~1 for z ~ N(0, I_rank)
    spread: np.ndarray  # (C,) noise norm relative to the unit centre
    weights: np.ndarray  # (C,) cluster probabilities
    iso: float  # isotropic noise norm, relative to the low-rank part


def make_mixture(dim: int, n_clusters: int, rank: int, iso: float, seed: int) -> Mixture:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((n_clusters, rank, dim), dtype=np.float32) / np.sqrt(rank * dim)
    spread = np.exp(rng.uniform(np.log(0.4), np.log(1.2), n_clusters)).astype(np.float32)
    weights = rng.lognormal(0.0, 0.5, n_clusters)
    return Mixture(centres, basis, spread, weights / weights.sum(), iso)


def sample(mix: Mixture, n: int, seed: int, chunk: int = 65_536) -> np.ndarray:
    """(n, D) float32 unit vectors drawn from ``mix``, generated ``chunk`` rows at a time."""
    rng = np.random.default_rng(seed)
    n_clusters, rank, dim = mix.basis.shape
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.choice(n_clusters, size=m, p=mix.weights)
        z = rng.standard_normal((m, rank), dtype=np.float32)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * np.float32(mix.iso / np.sqrt(dim))
        order = np.argsort(labels, kind="stable")  # one matmul per cluster present
        bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[c] : bounds[c + 1]]
            noise[rows] += z[rows] @ mix.basis[c]
        block = mix.centres[labels] + mix.spread[labels, None] * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


# ---------------------------------------------------------------- measuring


def latency_ms(index: faiss.Index, queries: np.ndarray, threads: int, warmup: int) -> np.ndarray:
    """Per-query wall time (ms) of ``search`` on one query at a time; warm-up queries dropped."""
    faiss.omp_set_num_threads(threads)
    for i in range(min(warmup, len(queries))):
        search(index, queries[i : i + 1], K)
    times = np.empty(len(queries))
    for i in range(len(queries)):
        t0 = time.perf_counter_ns()
        search(index, queries[i : i + 1], K)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    return times


def configs(n: int, dim: int, args: argparse.Namespace) -> list[tuple[str, IndexSpec, list[dict]]]:
    """(name, spec to build, search-parameter sets to sweep) for every type asked for."""
    nlist = ivf_nlist(n)
    train = min(n, max(50 * nlist, 65_536))
    out: list[tuple[str, IndexSpec, list[dict]]] = []
    types = args.types.split(",")
    if "flat" in types:
        out.append(("Flat", IndexSpec("Flat"), [{}]))
    if "hnsw" in types:
        for m in args.hnsw_m:
            for efc in args.ef_construction:
                sweep = [{"efSearch": e} for e in args.ef_search]
                spec = IndexSpec(f"HNSW{m}", build_params={"efConstruction": efc})
                out.append((f"HNSW{m}", spec, sweep))
    if "ivfpq" in types:
        factory = f"IVF{nlist},PQ{dim // 4}x8,RFlat"
        sweep = [{"nprobe": p, "k_factor": kf} for p in args.nprobe for kf in args.k_factor]
        out.append(("IVF-PQ+RFlat", IndexSpec(factory, train_size=train), sweep))
    if "ivfsq8" in types:
        sweep = [{"nprobe": p} for p in args.nprobe]
        out.append(("IVF-SQ8", IndexSpec(f"IVF{nlist},SQ8", train_size=train), sweep))
    # Make sure the default choice is measured with exactly its own parameters.
    chosen = choose_index(n, dim)
    for _, spec, sweep in out:
        if spec.factory == chosen.factory and spec.build_params == chosen.build_params:
            if chosen.search_params not in sweep:
                sweep.append(dict(chosen.search_params))
            break
    else:
        spec = IndexSpec(chosen.factory, train_size=chosen.train_size, build_params=chosen.build_params)
        out.append(("choose_index", spec, [dict(chosen.search_params)]))
    return out


def machine() -> dict[str, Any]:
    return platform_machine(
        cpus_usable=cpus_usable(),
        memory_gb=memory_gb(),
        nice=os.nice(0),
        faiss=faiss.__version__,
        faiss_compile_options=faiss.get_compile_options().strip(),
        numpy=np.__version__,
        note="2 cores shared with other engineers' jobs; latencies may be noisy",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, dim = args.n, args.dim
    t0 = time.perf_counter()
    mix = make_mixture(dim, args.clusters, args.rank, args.iso, args.seed)
    xb = sample(mix, n, seed=args.seed + 1)
    xq = sample(mix, args.queries, seed=args.seed + 2)
    gen_s = time.perf_counter() - t0
    log(f"generated {n} x {dim} in {gen_s:.1f} s")

    faiss.omp_set_num_threads(args.threads[-1])
    faiss.cvar.distance_compute_blas_threshold = 20
    t0 = time.perf_counter()
    _, gt = faiss.knn(xq, xb, K, metric=faiss.METRIC_INNER_PRODUCT)
    gt_s = time.perf_counter() - t0
    log(f"exact ground truth for {args.queries} queries in {gt_s:.1f} s")

    loads = [os.getloadavg()[0]]
    rows: list[dict[str, Any]] = []
    for name, spec, sweep in configs(n, dim, args):
        build_spec = IndexSpec(
            spec.factory,
            search_params=sweep[0],
            train_size=spec.train_size,
            build_params=spec.build_params,
        )
        t0 = time.perf_counter()
        index = build_index(xb, build_spec, seed=args.seed, threads=args.threads[-1])
        build_s = time.perf_counter() - t0
        nbytes = faiss.serialize_index(index).size
        log(f"{name} {spec.factory}: built in {build_s:.1f} s, {nbytes / n:.0f} B/object")
        for params in sweep:
            run_spec = IndexSpec(spec.factory, search_params=params)
            apply_search_params(index, run_spec)
            faiss.omp_set_num_threads(args.threads[-1])
            _, ids = search(index, xq, K)
            recall = intersection_recall(ids, gt)
            n_lat = min(args.queries, args.flat_latency_queries if name == "Flat" else args.queries)
            latency = {str(t): latency_summary(latency_ms(index, xq[:n_lat], t, args.warmup), qs=(50, 99))
                       for t in args.threads}
            row = {
                "name": name,
                "factory": spec.factory,
                "search_params": params,
                "train_size": spec.train_size,
                "build_params": spec.build_params,
                "recall_at_10": recall,
                "latency": latency,
                "timed_queries": n_lat,
                "warmup_queries": args.warmup,
                "build_s": build_s,
                "bytes_per_object": nbytes / n,
                "meets_target": (recall >= TARGET_RECALL and latency["1"]["p50_ms"] <= TARGET_P50_MS)
                if "1" in latency
                else None,
            }
            rows.append(row)
            log(
                f"  {params}: recall@10 {recall:.4f}, "
                + ", ".join(f"{t} thr p50 {v['p50_ms']:.3f} p99 {v['p99_ms']:.3f} ms" for t, v in latency.items())
            )
        del index
        loads.append(os.getloadavg()[0])

    require_measured("index_types", objects=n, queries=len(xq), index_configs=len(rows),
                     timed_queries=min((r["timed_queries"] for r in rows), default=0))
    chosen = choose_index(n, dim)
    match = next(
        r
        for r in rows
        if r["factory"] == chosen.factory
        and r["build_params"] == chosen.build_params
        and r["search_params"] == chosen.search_params
    )
    return {
        "benchmark": "index_types",
        "question": "which index type reaches recall@10 >= 0.95 at <= 1 ms p50 on one thread",
        # "+dirty" only when this benchmark or the module it measures differ from HEAD
        "git_sha": git_sha(paths=["bench/bench_index_types.py", "indexer/index_types.py", "bench/_common.py"],
                           mark="+dirty", unknown="uncommitted"),
        "date": utc_now_iso(),
        "command": command_line(),
        "machine": machine(),
        "load_average_1min": loads,
        "settings": {
            "n": n,
            "dim": dim,
            "queries": args.queries,
            "k": K,
            "seed": args.seed,
            "clusters": args.clusters,
            "rank": args.rank,
            "iso": args.iso,
            "threads": args.threads,
            "warmup": args.warmup,
            "flat_latency_queries": args.flat_latency_queries,
            "queries_are": "held-out draws from the same mixture",
            "latency_is": "wall time of indexer.index_types.search on one query",
            "blas_threshold": faiss.cvar.distance_compute_blas_threshold,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        },
        "timing": {"generate_s": gen_s, "ground_truth_s": gt_s},
        "target": {"recall_at_10": TARGET_RECALL, "p50_ms_one_thread": TARGET_P50_MS},
        "choose_index": {
            "spec": chosen.to_json(),
            "name": match["name"],
            "recall_at_10": match["recall_at_10"],
            "p50_ms_one_thread": match["latency"]["1"]["p50_ms"],
            "meets_target": match["meets_target"],
        },
        "results": rows,
    }


# ---------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    """The results table (plus machine, date, command) as Markdown, built from the JSON."""
    s, m, c = result["settings"], result["machine"], result["choose_index"]
    threads = [str(t) for t in s["threads"]]
    head = ["index", "factory", "build params", "search params", "recall@10"]
    head += [f"p50 / p99 ms, {t} thr" for t in threads]
    head += ["build s", "bytes/object", "meets target"]
    lines = [
        f"n = {s['n']:,} x {s['dim']}-d clustered unit vectors ({s['clusters']} clusters, "
        f"rank {s['rank']}, iso {s['iso']}), {s['queries']} held-out queries, k = {s['k']}; "
        f"latency: {s['warmup']} warm-up queries dropped, then each query timed once "
        f"(Flat: first {min(s['queries'], s['flat_latency_queries'])}).",
        "",
        f"- machine: {m['cpu_model']}, {m['cpu_count']} CPUs ({m['platform']}), "
        f"{m['memory_gb']} GB, faiss {m['faiss']} ({m['faiss_compile_options']}), "
        f"nice {m['nice']}, OMP_WAIT_POLICY={s.get('omp_wait_policy')}; load average during run "
        f"{min(result['load_average_1min']):.1f}-{max(result['load_average_1min']):.1f}",
        f"- date: {result['date']}, git: {result['git_sha']}",
        f"- command: `{result['command']}`",
        f"- exact ground truth ({s['queries']} queries, batched, BLAS): {result['timing']['ground_truth_s']:.1f} s",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for r in result["results"]:
        params = ", ".join(f"{k}={v}" for k, v in r["search_params"].items()) or "-"
        built = ", ".join(f"{k}={v}" for k, v in (r.get("build_params") or {}).items()) or "-"
        cells = [r["name"], f"`{r['factory']}`", built, params, f"{r['recall_at_10']:.4f}"]
        cells += [f"{r['latency'][t]['p50_ms']:.3f} / {r['latency'][t]['p99_ms']:.3f}" for t in threads]
        cells += [f"{r['build_s']:.1f}", f"{r['bytes_per_object']:.0f}", "yes" if r["meets_target"] else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    spec = c["spec"]
    every = {**spec.get("build_params", {}), **spec["search_params"]}
    params = ", ".join(f"{k}={v}" for k, v in every.items()) or "no parameters"
    lines += [
        "",
        f"`choose_index({s['n']}, {s['dim']})` picks `{spec['factory']}` ({params}): "
        f"recall@10 {c['recall_at_10']:.4f}, p50 {c['p50_ms_one_thread']:.3f} ms on one thread "
        f"-> target (recall@10 >= {result['target']['recall_at_10']}, p50 <= "
        f"{result['target']['p50_ms_one_thread']} ms) " + ("**met**." if c["meets_target"] else "**missed**."),
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="database size (default: smoke run)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--rank", type=int, default=16, help="per-cluster noise subspace dimension")
    p.add_argument("--iso", type=float, default=0.3, help="isotropic noise, relative")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--types", default="flat,hnsw,ivfpq,ivfsq8")
    p.add_argument("--hnsw-m", type=int, nargs="+", default=[32])
    p.add_argument(
        "--ef-construction", type=int, nargs="+", default=[40], help="HNSW efConstruction values (FAISS default 40)"
    )
    p.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--k-factor", type=int, nargs="+", default=[8])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument(
        "--flat-latency-queries", type=int, default=200, help="Flat costs ~n*dim per query; time only this many"
    )
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/index_types_n<N>.json)")
    p.add_argument(
        "--markdown", type=Path, metavar="JSON", help="print the Markdown table of an existing result file and exit"
    )
    args = p.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    out = args.out or Path(f"bench/results/index_types_n{args.n}.json")
    result = run(args)
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
