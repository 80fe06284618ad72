"""How many `/objects/{id}/similar?k=10` requests per second does one service process answer at
10^6 indexed objects, and how much latency does the service add to the bare index search?

Builds a synthetic published version (n clustered 128-d float16 unit vectors, a catalog with
object_id/ra/dec/z/mag_r, scores, the index `indexer.index_types.choose_index` picks for n),
starts `uvicorn` on 127.0.0.1 in its own process, and drives it from ANOTHER process with an
asyncio + httpx load generator that stops by itself (request count and time bounds):

  1. warm-up (dropped);
  2. latency: one request at a time -> p50/p99 of a lone request (service + index, no queueing);
  3. throughput: `--concurrency` requests in flight (closed loop) -> requests/s, p50/p99 under load;
  4. the bare FAISS single-query search (p50) on the same index, measured in this run, in this
     process, with the server's thread settings (before and after the load phases).

Targets (issue 7): >= 500 req/s, and lone-request p50 <= bare search p50 + 2 ms. The survey pixels
are not needed (IndexedSurvey opens them lazily; /similar never does).

Usage (repository root):
    .venv/bin/python bench/bench_service_load.py --n 20000 --duration 5 --repeats 1     # smoke run
    nice -n 10 .venv/bin/python bench/bench_service_load.py --n 1000000 \\
        --out bench/results/service_load.json --markdown docs/benchmarks_service.md
    .venv/bin/python bench/bench_service_load.py --render bench/results/service_load.json \\
        --markdown docs/benchmarks_service.md                                               # table only
Internal sub-commands (each runs in its own process): `serve`, `load`.

The server runs with OMP_NUM_THREADS=1 and OMP_WAIT_POLICY=PASSIVE: a single-query search gains
nothing from threads, and spinning OpenMP threads starve everything else on two shared cores
(see bench/bench_index_types.py).

The server writes its output (the service's access log, one line per request, as `skysift serve`
does; `--access-log off` silences it) to `server-<N>w.log` in the work folder, never to a pipe
nobody reads: a full pipe blocks the server on its own log after ~64 KB, and the run then
measures nothing. A phase that completed no request stops the run with exit 1 and no JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    command_line,
    git_sha,
    latency_summary,
    log,
    memory_gb,
    platform_machine,
    prefer_passive_omp,
    require_measured,
    utc_now_iso,
    versions,
    write_json,
)

prefer_passive_omp()  # before FAISS loads libgomp

import numpy as np  # noqa: E402

BENCH = "service_load"
TARGET_RPS = 500.0
TARGET_OVERHEAD_MS = 2.0
SERVER_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


# ---------------------------------------------------------------- synthetic version


def make_vectors(n: int, dim: int, clusters: int, seed: int, chunk: int = 65_536) -> np.ndarray:
    """(n, dim) float32 unit vectors: Gaussian clusters around random unit centres (sizes
    log-normal, spreads log-uniform in [0.4, 1.2] of the centre's norm)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = np.exp(rng.uniform(np.log(0.4), np.log(1.2), clusters)).astype(np.float32) / np.sqrt(dim)
    weights = rng.lognormal(0.0, 0.5, clusters)
    label = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        lab = label[s : s + chunk]
        x = centres[lab] + rng.standard_normal((len(lab), dim), dtype=np.float32) * spread[lab, None]
        out[s : s + chunk] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def build_version(root: Path, n: int, dim: int, seed: int, factory: str | None = None) -> dict[str, Any]:
    """Write and publish a complete version under root; returns build timings and the spec."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer import index_types
    from indexer.artifacts import file_entries, now_iso, publish, version_name, write_manifest
    from indexer.build import healpix_index

    t0 = time.perf_counter()
    stage = root / "building" / "bench" / "stage"
    stage.mkdir(parents=True, exist_ok=True)
    vec = make_vectors(n, dim, clusters=max(10, n // 1000), seed=seed)
    emb16 = vec.astype(np.float16)
    np.save(stage / "embeddings.npy", emb16)
    vec = emb16.astype(np.float32)  # the index holds what the service's vectors are (float16 rounded)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    t_data = time.perf_counter() - t0

    spec = index_types.choose_index(n, dim)
    if factory:  # smoke runs at small n: the index the full run will use
        spec = index_types.IndexSpec(factory, search_params={"efSearch": index_types.HNSW_EF_SEARCH}
                                     if factory.startswith("HNSW") else {})
    log(f"building {spec.factory} {spec.search_params} over {n} x {dim}")
    t1 = time.perf_counter()
    index = index_types.build_index(vec, spec, seed=seed)
    t_index = time.perf_counter() - t1
    recall = index_types.recall_at_k(index, vec, k=10, sample=1000, seed=seed)
    log(f"index built in {t_index:.0f} s, recall@10 {recall:.3f}")
    index_types.save_index(index, stage / "index.faiss")
    del index

    rng = np.random.default_rng(seed + 1)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    ids = [f"bench-{i:07d}" for i in range(n)]
    cat = pa.table({"object_id": ids, "ra": ra, "dec": dec, "z": rng.lognormal(-1.5, 0.5, n),
                    "mag_r": rng.normal(20.0, 1.5, n), "row": np.arange(n, dtype=np.int64),
                    "healpix": healpix_index(ra, dec, 256)})
    pq.write_table(cat, stage / "catalog.parquet")
    # scores only need to exist for /similar: a cheap stand-in for the kNN anomaly score, and lens
    # scores for 0.1 % of the objects (NaN elsewhere, as a version built from few known lenses)
    anomaly = rng.gamma(2.0, 0.05, n).astype(np.float32)
    lens = np.full(n, np.nan, dtype=np.float32)
    lens[rng.choice(n, size=max(1, n // 1000), replace=False)] = rng.uniform(0, 1, max(1, n // 1000))
    pq.write_table(pa.table({"object_id": ids, "row": np.arange(n), "anomaly_score": anomaly, "lens_score": lens}),
                   stage / "scores.parquet")
    del vec, emb16, cat, ids

    manifest = {
        "version": version_name(file_entries(stage)), "created": now_iso(), "code_version": code_version(),
        "n_objects": n, "embedding_dim": dim,
        "survey": {"path": str(root / "no-pixels"), "name": f"bench-synthetic-{n}", "bands": ["g", "r", "z"],
                   "pixel_scale_arcsec": 0.262, "image_shape": [3, 64, 64]},
        "encoder": {"weights_sha256": "0" * 64, "backbone": "none (synthetic vectors)", "produced_by": BENCH,
                    "input_size_px": 64},
        "index": {**spec.to_json(), "recall_at_10": recall, "recall_sample": 1000},
        "scores": {"anomaly": "synthetic (gamma-distributed stand-in)", "lens": "synthetic, 0.1 % of objects"},
        "columns": {"redshift": "z", "magnitude": "mag_r"},
        "healpix": {"nside": 256, "order": "nested"},
        "settings": {"bench": BENCH, "n": n, "dim": dim, "seed": seed, "factory": factory},
    }
    write_manifest(stage, manifest)
    version = publish(root, stage)
    return {"version": version, "index_factory": spec.factory, "search_params": spec.search_params,
            "recall_at_10": recall, "data_s": round(t_data, 1), "index_build_s": round(t_index, 1),
            "total_build_s": round(time.perf_counter() - t0, 1)}


def existing_version(root: Path, n: int, dim: int, seed: int, factory: str | None) -> dict[str, Any] | None:
    from indexer.artifacts import current_dir, read_manifest

    try:
        m = read_manifest(current_dir(root))
    except Exception:
        return None
    if m.get("settings") != {"bench": BENCH, "n": n, "dim": dim, "seed": seed, "factory": factory}:
        return None
    return {"version": m["version"], "index_factory": m["index"]["factory"],
            "search_params": m["index"]["search_params"], "recall_at_10": m["index"]["recall_at_10"], "reused": True}


# ---------------------------------------------------------------- in-process reference timings


def percentiles(ms: np.ndarray) -> dict[str, float]:
    return {**latency_summary(ms, ndigits=4), "n": int(len(ms))}


def bare_search(root: Path, queries: int, seed: int, k: int = 10) -> dict[str, Any]:
    """Single-query FAISS search p50 on the published index, one thread (the server's setting),
    queries = stored object vectors (what /similar searches with); plus the same call through
    IndexedSurvey.similar and the route function (no HTTP) to split the service overhead."""
    import faiss

    from app.routes.objects import similar_response
    from indexer.store import Filters, IndexedSurvey

    faiss.omp_set_num_threads(1)
    store = IndexedSurvey.open_current(root)
    rng = np.random.default_rng(seed + 7)
    rows = rng.integers(0, len(store), size=queries + 200)
    vecs = [store.vector(int(r)).reshape(1, -1) for r in rows]
    times = []
    for i, q in enumerate(vecs):
        t0 = time.perf_counter()
        store.search_batch(q, k)
        if i >= 200:
            times.append((time.perf_counter() - t0) * 1e3)
    ids = [str(store.catalog["object_id"][int(r)]) for r in rows[:1200]]
    store.row_of(ids[0])  # builds the id -> row map once
    t_store, t_route = [], []
    for i, oid in enumerate(ids):
        t0 = time.perf_counter()
        store.similar(oid, k)
        t1 = time.perf_counter()
        similar_response(store, oid, k, Filters(), "json")  # the handler's work without HTTP: search + JSON
        t2 = time.perf_counter()
        if i >= 200:
            t_store.append((t1 - t0) * 1e3)
            t_route.append((t2 - t1) * 1e3)
    return {"faiss_search": percentiles(np.array(times)), "store_similar": percentiles(np.array(t_store)),
            "route_function_and_json": percentiles(np.array(t_route)),
            "asgi_in_process": asgi_in_process(root, ids, k)}


def asgi_in_process(root: Path, ids: list[str], k: int) -> dict[str, float]:
    """The whole app (middleware, routing, parameter validation, handler, JSON) called as an ASGI
    callable in this process: the service's cost without HTTP parsing, sockets or a second process."""
    from app.main import create_app
    from app.settings import ServiceSettings

    app = create_app(ServiceSettings(artifacts=root, votes_db=root / "votes.sqlite", watch_interval_s=0))
    app.state.holder.reload()

    async def call(path: str) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": f"k={k}".encode(),
                 "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}
        status = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    async def run_all() -> list[float]:
        out = []
        for i, oid in enumerate(ids):
            t0 = time.perf_counter()
            assert await call(f"/api/v1/objects/{oid}/similar") == 200
            if i >= 200:
                out.append((time.perf_counter() - t0) * 1e3)
        return out

    return percentiles(np.array(asyncio.run(run_all())))


# ---------------------------------------------------------------- server and load processes


ACCESS_LOG_ENV = "SKYSIFT_BENCH_ACCESS_LOG"  # "0": the server's processes silence the access log


def create_app_for_bench() -> Any:
    """`app.main.create_app_from_env` (what each `skysift serve --workers N` process runs), with the
    service's access log (logger skysift.access) silenced when ACCESS_LOG_ENV is "0". A factory
    named by import string, so uvicorn's spawned worker processes run it too."""
    import logging

    from app.main import create_app_from_env

    app = create_app_from_env()
    if os.environ.get(ACCESS_LOG_ENV) == "0":
        logging.getLogger("skysift.access").disabled = True
    return app


def serve(args: argparse.Namespace) -> None:
    """The server as `skysift serve --workers N` runs it: settings from SKYSIFT_* variables.
    uvicorn's own access log is off; the service's (skysift.access) is on unless --access-log off."""
    import uvicorn

    os.environ.update({"SKYSIFT_ARTIFACTS": args.artifacts, "SKYSIFT_WATCH_INTERVAL_S": "0",
                       "SKYSIFT_VOTES_DB": str(Path(args.artifacts) / "votes.sqlite"),
                       ACCESS_LOG_ENV: "1" if args.access_log == "on" else "0"})
    if args.workers == 1:
        uvicorn.run(create_app_for_bench(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    else:
        uvicorn.run("bench_service_load:create_app_for_bench", factory=True, host="127.0.0.1", port=args.port,
                    log_level="warning", access_log=False, workers=args.workers)


WRK_SCRIPT = """
math.randomseed(%(seed)d)
request = function()
  local i = math.random(0, %(n)d - 1)
  return wrk.format("GET", string.format("/api/v1/objects/bench-%%07d/similar?k=%(k)d", i))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "bytes": %%d, "non_2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def run_wrk(url: str, server_pids: list[int], n: int, concurrency: int, duration: float, k: int,
            seed: int) -> dict[str, Any]:
    """One closed-loop phase with wrk (C, one thread): `concurrency` connections, random ids."""
    script = Path(f"/tmp/skysift_bench_wrk_{os.getpid()}_{seed}.lua")
    script.write_text(WRK_SCRIPT % {"seed": seed, "n": n, "k": k})
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(int(duration), 1)}s", "--timeout", "30s", "-s", str(script), url]
    cpu0, ru0 = tree_cpu_s(server_pids), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    cpu, ru1 = tree_cpu_s(server_pids) - cpu0, resource.getrusage(resource.RUSAGE_CHILDREN)
    script.unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr[-2000:]}")
    w = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"requests"')))
    reqs, elapsed = w["requests"], w["duration_us"] / 1e6
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"concurrency": concurrency, "requests": reqs, "errors": w["non_2xx"] + w["socket_errors"],
            "elapsed_s": round(elapsed, 3), "requests_per_s": round(reqs / elapsed, 1),
            "latency": {"p50_ms": w["p50_us"] / 1e3, "p90_ms": w["p90_us"] / 1e3, "p99_ms": w["p99_us"] / 1e3,
                        "mean_ms": round(w["mean_us"] / 1e3, 3)},
            "client_cpu_ms_per_request": round(client_cpu * 1e3 / max(reqs, 1), 3),
            "server_cpu_ms_per_request": round(cpu * 1e3 / max(reqs, 1), 3)}


async def _load(url: str, n_objects: int, concurrency: int, requests: int, duration_s: float, k: int,
                seed: int) -> dict[str, Any]:
    import httpx

    rng = np.random.default_rng(seed)
    paths = [f"/api/v1/objects/bench-{i:07d}/similar?k={k}" for i in rng.integers(0, n_objects, size=requests)]
    latencies: list[float] = []
    errors: list[str] = []
    next_i = 0
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal next_i
            while next_i < requests and time.perf_counter() < deadline:
                path = paths[next_i]
                next_i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    ok = r.status_code == 200 and b'"neighbours"' in r.content
                except httpx.HTTPError as exc:
                    ok, r = False, exc  # type: ignore[assignment]
                latencies.append((time.perf_counter() - t0) * 1e3)
                if not ok:
                    errors.append(str(getattr(r, "status_code", r))[:200])

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ms = np.array(latencies)
    return {"concurrency": concurrency, "requests": len(ms), "errors": len(errors), "error_samples": errors[:5],
            "elapsed_s": round(elapsed, 3), "requests_per_s": round(len(ms) / elapsed, 1),
            "latency": percentiles(ms) if len(ms) else {},
            "client_cpu_ms_per_request": round(cpu * 1e3 / max(len(ms), 1), 3)}


def load(args: argparse.Namespace) -> None:
    result = asyncio.run(_load(args.url, args.n, args.concurrency, args.requests, args.duration, args.k, args.seed))
    print(json.dumps(result))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds of the given processes and their live children (uvicorn's worker processes)."""
    total, seen = 0.0, set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += proc_cpu_s(pid)
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo += [int(x) for x in kids]
    return total


def run_load(url: str, server_pid: int, n: int, concurrency: int, requests: int, duration: float, k: int,
             seed: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "load", "--url", url, "--n", str(n), "--concurrency", str(concurrency),
           "--requests", str(requests), "--duration", str(duration), "--k", str(k), "--seed", str(seed)]
    cpu0 = tree_cpu_s([server_pid])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, cwd=ROOT)
    cpu = tree_cpu_s([server_pid]) - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["server_cpu_ms_per_request"] = round(cpu * 1e3 / max(res["requests"], 1), 3)
    return res


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, server_log: Path) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; {server_log} ends:\n{tail(server_log)}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready in {timeout:g} s; {server_log} ends:\n{tail(server_log)}")


# ---------------------------------------------------------------- the run


def machine() -> dict[str, Any]:
    import faiss
    import fastapi
    import httpx
    import pydantic
    import uvicorn

    try:
        import httptools  # noqa: F401

        http_impl = "httptools"
    except ImportError:
        http_impl = "h11 (pure Python; httptools not installed)"
    try:
        import uvloop  # noqa: F401

        loop_impl = "uvloop"
    except ImportError:
        loop_impl = "asyncio (uvloop not installed)"
    return platform_machine(memory_gb=memory_gb(), **versions(faiss, fastapi, pydantic, uvicorn, httpx),
                            uvicorn_http=http_impl, uvicorn_loop=loop_impl,
                            note="2 cores shared with other engineers' jobs (tests, benchmarks, builds ran "
                                 "meanwhile); server and load generator share the same 2 cores")


def code_version() -> str:
    """HEAD, with "+dirty" when this benchmark or the service code it measures differ from it."""
    return git_sha(paths=["bench/bench_service_load.py", "bench/_common.py", "app/", "indexer/store.py"],
                   mark="+dirty", unknown="uncommitted")


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.workdir or f"/tmp/skysift_bench_service/n{args.n}")
    load_start = os.getloadavg()
    build = existing_version(root, args.n, args.dim, args.seed, args.factory) if args.reuse else None
    if build is None:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        build = build_version(root, args.n, args.dim, args.seed, args.factory)
    log(f"version {build['version']} at {root}")

    search_before = bare_search(root, args.search_queries, args.seed)
    log(f"bare search p50 {search_before['faiss_search']['p50_ms']} ms; store.similar p50 "
        f"{search_before['store_similar']['p50_ms']} ms; "
        f"route+json p50 {search_before['route_function_and_json']['p50_ms']} ms")

    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
    configs = {f"{w} worker{'s' if w > 1 else ''}": measure_server(root, w, client, args) for w in args.workers}
    search_after = bare_search(root, args.search_queries, args.seed + 1)
    search_p50 = search_before["faiss_search"]["p50_ms"]
    results = {name: summarise(phases, search_p50) for name, phases in configs.items()}
    best = max(results, key=lambda name: results[name]["requests_per_s"])
    metrics = {**results[best], "config": best, "bare_search_p50_ms": search_p50,
               "bare_search_p50_ms_after": search_after["faiss_search"]["p50_ms"]}
    metrics["meets_latency_target"] = metrics["lone_p50_ms"] <= search_p50 + TARGET_OVERHEAD_MS
    load_gen = ("wrk 4.1 (C), 1 thread, separate process, closed loop, random ids (Lua)" if client == "wrk"
                else "separate process, asyncio + httpx.AsyncClient, closed loop, random ids")
    return {
        "benchmark": BENCH,
        "question": "requests/s and latency of /objects/{id}/similar?k=10 at n objects vs the bare index search",
        "git_sha": code_version(),
        "date": utc_now_iso(),
        "command": command_line(".venv/bin/python"),
        "machine": machine(),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"n": args.n, "dim": args.dim, "seed": args.seed, "factory_override": args.factory, "k": 10,
                     "concurrency": args.concurrency, "workers": args.workers, "client": client,
                     "throughput_requests": args.requests, "latency_requests": args.latency_requests,
                     "warmup_requests": args.warmup, "max_phase_s": args.duration, "repeats": args.repeats,
                     "server": "uvicorn (httptools + uvloop when installed), uvicorn's access log off, "
                               "watcher off",
                     "access_log": access_log_note(args.access_log),
                     "server_env": SERVER_ENV, "load_generator": load_gen},
        "build": build,
        "targets": {"requests_per_s": f">= {TARGET_RPS:g}",
                    "lone_p50_ms": f"<= bare search p50 + {TARGET_OVERHEAD_MS:g}"},
        "metrics": metrics,
        "configs": results,
        "reference_in_process": {"before": search_before, "after": search_after},
        "phases": configs,
        "repeats": args.repeats,
    }


def measure_server(root: Path, workers: int, client: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start one server with `workers` processes, warm it up, then the latency and throughput phases."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **SERVER_ENV}
    server_log = root / f"server-{workers}w.log"
    with open(server_log, "w") as out:  # a file, never an unread pipe (the server would block on it)
        server = subprocess.Popen([sys.executable, __file__, "serve", "--artifacts", str(root), "--port", str(port),
                                   "--workers", str(workers), "--access-log", args.access_log],
                                  env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def phase(concurrency: int, requests: int, seed: int) -> dict[str, Any]:
        if client == "wrk":
            return run_wrk(url, [server.pid], args.n, concurrency, args.duration, 10, seed)
        return run_load(url, server.pid, args.n, concurrency, requests, args.duration, 10, seed)

    phases: dict[str, Any] = {"workers": workers, "client": client, "server_log": str(server_log)}
    try:
        phases["ready_s"] = round(wait_ready(url, server, timeout=600, server_log=server_log), 1)
        log(f"{workers} worker(s) ready after {phases['ready_s']} s")
        phase(max(4, 2 * workers), args.warmup, args.seed)  # warm-up (every worker), dropped
        phases["latency"] = [phase(1, args.latency_requests, args.seed + 100 + i) for i in range(args.repeats)]
        log("latency:", [(p["latency"]["p50_ms"], p["latency"]["p99_ms"]) for p in phases["latency"]])
        phases["throughput"] = [phase(args.concurrency, args.requests, args.seed + 200 + i)
                                for i in range(args.repeats)]
        log("throughput:", [p["requests_per_s"] for p in phases["throughput"]])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    with open(server_log, errors="replace") as f:
        phases["access_log_lines"] = sum(" skysift.access " in line for line in f)
    require_phases_measured(phases)
    return phases


def require_phases_measured(phases: dict[str, Any]) -> None:
    """Exit 1 (no JSON) when a timed phase completed no request or no request succeeded: 0 req/s is
    not a measurement, and its empty latencies would read as a met latency target."""
    for name in ("latency", "throughput"):
        for i, p in enumerate(phases.get(name, [])):
            where = f"{phases['workers']} worker(s), {name} repeat {i}"
            require_measured(BENCH, **{f"{where}: requests": p["requests"],
                                       f"{where}: answered": p["requests"] - p["errors"]})


def access_log_note(access_log: str) -> str:
    if access_log == "on":
        return "on: the service's access log (skysift.access), one line per request, to server-<N>w.log"
    return "off (--access-log off): logger skysift.access disabled in every server process"


def summarise(phases: dict[str, Any], search_p50: float) -> dict[str, Any]:
    lat, thr = phases["latency"], phases["throughput"]
    lone_p50 = float(np.median([p["latency"]["p50_ms"] for p in lat]))
    rps = float(np.median([p["requests_per_s"] for p in thr]))
    server_cpu = float(np.median([p["server_cpu_ms_per_request"] for p in thr]))
    client_cpu = float(np.median([p["client_cpu_ms_per_request"] for p in thr]))
    return {
        "workers": phases["workers"],
        "requests_per_s": rps,
        "requests_per_s_repeats": [p["requests_per_s"] for p in thr],
        "loaded_p50_ms": float(np.median([p["latency"]["p50_ms"] for p in thr])),
        "loaded_p99_ms": float(np.median([p["latency"]["p99_ms"] for p in thr])),
        "lone_p50_ms": lone_p50,
        "lone_p99_ms": float(np.median([p["latency"]["p99_ms"] for p in lat])),
        "service_overhead_p50_ms": round(lone_p50 - search_p50, 3),
        "server_cpu_ms_per_request": server_cpu,
        "client_cpu_ms_per_request": client_cpu,
        "errors": int(sum(p["errors"] for p in lat + thr)),
        # what the CPU cost per request allows on free cores (an upper bound: CPU time measured under
        # contention includes cache and scheduler effects)
        "server_capacity_one_core_rps": round(1000.0 / max(server_cpu, 1e-9), 1),
        "two_core_capacity_with_this_client_rps": round(2000.0 / max(server_cpu + client_cpu, 1e-9), 1),
        "meets_rps_target": rps >= TARGET_RPS,
        "meets_latency_target": lone_p50 <= search_p50 + TARGET_OVERHEAD_MS,
    }


# ---------------------------------------------------------------- report


def markdown(res: dict[str, Any]) -> str:
    m, s, b, mach = res["metrics"], res["settings"], res["build"], res["machine"]
    ref = res["reference_in_process"]["before"]
    ok = {True: "yes", False: "**no**"}
    configs = res["configs"]
    names = list(configs)
    bound = m["bare_search_p50_ms"] + TARGET_OVERHEAD_MS

    def row(label: str, fmt: str, key: str, target: str = "", check: str | None = None) -> str:
        cells = [fmt.format(configs[n][key]) for n in names]
        met = " / ".join(ok[configs[n][check]] for n in names) if check else ""
        return f"| {label} | {' | '.join(cells)} | {target} | {met} |"

    lines = [
        "# Service load benchmark",
        "",
        f"Question: {res['question']}. Generated from `bench/results/service_load.json` by "
        "`bench/bench_service_load.py --render`; do not edit by hand.",
        "",
        f"- date: {res['date']}; git: `{res['git_sha']}`",
        f"- machine: {mach['cpu_model']}, {mach['cpu_count']} cores, {mach['memory_gb']} GB; "
        f"Python {mach['python']}, FastAPI {mach['fastapi']}, pydantic {mach['pydantic']}, uvicorn {mach['uvicorn']} "
        f"({mach['uvicorn_http']}, {mach['uvicorn_loop']}), faiss {mach['faiss']}",
        f"- load average at start / end: {res['load_average']['start']} / {res['load_average']['end']}; "
        "server and load generator share the machine's cores.",
        f"- command: `{res['command']}`",
        f"- index: `{b['index_factory']}` {b['search_params']}, recall@10 {b['recall_at_10']:.3f}, "
        f"n = {s['n']:,} x {s['dim']}",
        f"- server: {s['server']}, env {s['server_env']}; access log: "
        f"{s.get('access_log', 'not recorded (runs before the access-log setting)')}; load: {s['load_generator']}; "
        f"{res['repeats']} repeats of each phase of at most {s['max_phase_s']:g} s (median shown), warm-up dropped",
        "",
        f"**Headline ({m['config']}):** {m['requests_per_s']:.0f} requests/s with {s['concurrency']} in flight "
        f"(target >= {TARGET_RPS:g}: {ok[m['meets_rps_target']]}); a lone request's p50 {m['lone_p50_ms']:.2f} ms "
        f"against a bare index search of {m['bare_search_p50_ms']:.2f} ms (target <= {bound:.2f} ms: "
        f"{ok[m['meets_latency_target']]}).",
        "",
        f"| metric | {' | '.join(names)} | target | met |",
        "|---|" + "---|" * len(names) + "---|---|",
        row(f"requests/s, {s['concurrency']} in flight", "{:.0f}", "requests_per_s", f">= {TARGET_RPS:g}",
            "meets_rps_target"),
        "| repeats, requests/s | " + " | ".join(", ".join(f"{x:.0f}" for x in configs[n]["requests_per_s_repeats"])
                                             for n in names) + " | | |",
        row("p50 under that load, ms", "{:.2f}", "loaded_p50_ms"),
        row("p99 under that load, ms", "{:.2f}", "loaded_p99_ms"),
        row("lone request p50, ms", "{:.2f}", "lone_p50_ms", f"<= {bound:.2f}", "meets_latency_target"),
        row("lone request p99, ms", "{:.2f}", "lone_p99_ms"),
        row("service overhead at p50 (lone request - bare search), ms", "{:.2f}", "service_overhead_p50_ms",
            f"<= {TARGET_OVERHEAD_MS:g}"),
        row("server CPU per request, ms", "{:.2f}", "server_cpu_ms_per_request"),
        row("load-generator CPU per request, ms", "{:.3f}", "client_cpu_ms_per_request"),
        row("failed requests", "{}", "errors", "0"),
        "",
        "In-process references, same run and index:",
        "",
        "| layer | p50, ms |",
        "|---|---|",
        f"| bare FAISS single-query search (before / after the load phases) | {m['bare_search_p50_ms']:.3f} / "
        f"{m['bare_search_p50_ms_after']:.3f} |",
        f"| `IndexedSurvey.similar` (+ vector fetch, hit objects) | {ref['store_similar']['p50_ms']:.3f} |",
        f"| route function + JSON | {ref['route_function_and_json']['p50_ms']:.3f} |",
        f"| whole app as an ASGI call (no HTTP, no socket) | {ref['asgi_in_process']['p50_ms']:.3f} |",
        "",
    ]
    if res.get("analysis"):
        lines += ["## What it took", "", res["analysis"], ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    sp = sub.add_parser("serve")
    sp.add_argument("--artifacts", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--workers", type=int, default=1)
    sp.add_argument("--access-log", choices=["on", "off"], default="on")
    lp = sub.add_parser("load")
    lp.add_argument("--url", required=True)
    lp.add_argument("--n", type=int, required=True)
    lp.add_argument("--concurrency", type=int, default=16)
    lp.add_argument("--requests", type=int, default=5000)
    lp.add_argument("--duration", type=float, default=20.0)
    lp.add_argument("--k", type=int, default=10)
    lp.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="default /tmp/skysift_bench_service/n<N>")
    p.add_argument("--factory", default=None, help="override choose_index (smoke runs: HNSW32 at small n)")
    p.add_argument("--reuse", action="store_true", help="reuse a version built earlier with the same n/dim/seed")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2],
                   help="server process counts to compare, e.g. 1,2")
    p.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto",
                   help="load generator: wrk (C, little CPU) when on PATH, else the Python httpx client")
    p.add_argument("--requests", type=int, default=12_000, help="per throughput repeat (upper bound)")
    p.add_argument("--latency-requests", type=int, default=1500, help="per latency repeat (upper bound)")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--duration", type=float, default=20.0, help="time bound of each phase, s")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--access-log", choices=["on", "off"], default="on",
                   help="the service's access log, as `skysift serve` writes it (to server-<N>w.log); off: silenced")
    p.add_argument("--search-queries", type=int, default=2000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--render", type=Path, default=None, help="only render --markdown from this JSON")
    p.add_argument("--analysis", type=Path, default=None,
                   help="markdown text explaining the limits, stored in the JSON")
    args = p.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    if args.cmd == "load":
        load(args)
        return
    if args.render:
        res = json.loads(args.render.read_text())
        if args.analysis:
            res["analysis"] = args.analysis.read_text().strip()
            write_json(args.render, res)
    else:
        res = run(args)
        if args.analysis:
            res["analysis"] = args.analysis.read_text().strip()
        print(json.dumps(res, indent=2))
        if args.out:
            write_json(args.out, res)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(res))


if __name__ == "__main__":
    main()
