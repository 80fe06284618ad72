"""How close does end-to-end survey encoding get to bare model inference, and how long would 10^8 objects take?

In ONE run, for the same model, batch size and device:
  * bare:      `encoder.embed` on preprocessed batches already in device memory (the ceiling);
  * e2e:       `indexer.encode.encode_survey` from the native HDF5 shards to `emb-*.npy` shards
               (reads, LZF decompression, crop, arcsinh stretch, model, float16 write, markers);
  * baseline:  the pre-prefetch loop (`NativeSurvey.images` + `embed_array`, one thread, no overlap),
               to show what the background reader buys;
  * read / stretch: the reader alone and the stretch alone (where end-to-end time goes).
Repeats are interleaved (bare, e2e, baseline, bare, ...) so that load from other jobs on a shared
machine hits every variant alike; the first pass of each is a dropped warm-up; medians reported.

Usage (repository root):
    nice -n 10 .venv/bin/python bench/bench_encode.py --simulate 2000 --out bench/results/encode_cpu.json
    .venv/bin/python bench/bench_encode.py --survey /tmp/skysift_bench/survey --device cuda \\
        --batch-size 1024 --out bench/results/encode_cuda.json
    .venv/bin/python bench/bench_encode.py --markdown docs/indexing.md   # table from bench/results/encode*.json

Model: the training default (training/settings.py): half-width ResNet-18 (channels 32-64-128-256,
stem 32, no max-pool) on 32 px crops, randomly initialised (throughput does not depend on the
weights).

OpenMP wait policy: libgomp's worker threads spin between parallel regions. On a 2-core machine
shared with other jobs a spinning thread steals the core its partner needs, and 2-thread CPU
inference ran at ~40 % of its CPU efficiency (220-330 vs ~560 objects per CPU-second here), which
also made the comparison depend on which thread happened to call the model. The policy is read
once, when torch loads libgomp, so it is set here before `import torch`: PASSIVE unless the
environment says otherwise; `--omp-default` leaves libgomp's default to measure the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    command_line,
    fill_markers,
    git_sha,
    prefer_passive_omp,
    require_measured,
    sync_device,
    torch_machine,
    utc_now_iso,
    write_json,
)

if "--omp-default" not in sys.argv:
    prefer_passive_omp()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from encoder.card import ModelCard  # noqa: E402
from encoder.embed import embed_array  # noqa: E402
from encoder.model import Encoder  # noqa: E402
from encoder.preprocess import PreprocessConfig, preprocess  # noqa: E402
from encoder.weights import load_encoder, save_encoder  # noqa: E402
from indexer.encode import RowReader, encode_survey  # noqa: E402
from survey.native import NativeSurvey  # noqa: E402

TARGET_OBJECTS = 10**8
BEGIN, END = "<!-- bench_encode:begin -->", "<!-- bench_encode:end -->"


def machine() -> dict[str, Any]:
    out = torch_machine(load_avg_1min_at_start=os.getloadavg()[0],
                        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "libgomp default"))
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def simulate_survey(n: int, out: Path, seed: int) -> Path:
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate

    simulate(SimSettings(out_dir=out, preset="demo", n_objects=n, seed=seed, shard_size=512))
    return out


def make_encoder(survey: NativeSurvey, out: Path) -> Path:
    """Randomly initialised training-default encoder with a card matching the survey."""
    from training.settings import TrainSettings

    t = TrainSettings()
    cols = [f"noise_sigma_{b}" for b in survey.bands]
    scale = (tuple(float(np.median(survey.catalog[c])) for c in cols) if all(c in survey.catalog for c in cols)
             else (0.01,) * len(survey.bands))
    pre = PreprocessConfig(bands=survey.bands, pixel_scale_arcsec=survey.pixel_scale_arcsec,
                           input_size_px=t.augment.crop_size_px, band_scale=scale)
    torch.manual_seed(0)
    enc = Encoder(t.backbone, len(survey.bands), t.proj_dim, t.proj_hidden, t.small_input, t.backbone_kwargs)
    card = ModelCard(backbone=t.backbone, backbone_kwargs=t.backbone_kwargs, small_input=t.small_input,
                     embedding_dim=enc.embedding_dim, projection_dim=t.proj_dim, projection_hidden=t.proj_hidden,
                     preprocess=pre, produced_by="bench/bench_encode.py (random init)")
    save_encoder(enc, card, out)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="skysift_bench_encode_"))
    try:
        survey_dir = args.survey or simulate_survey(args.simulate, Path(args.sim_dir), args.seed)
        survey = NativeSurvey(survey_dir)
        n = min(args.n or len(survey), len(survey))
        if n < len(survey):
            raise SystemExit("--n below the survey size: encode_survey always encodes the whole survey")
        enc_dir = make_encoder(survey, work / "encoder")
        device = torch.device(args.device)
        encoder, card = load_encoder(enc_dir, device)
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
            encoder = encoder.to(memory_format=torch.channels_last)
        bf16 = cuda

        # in-memory, preprocessed, on the device: every batch the e2e run will see
        x_all = preprocess(survey.images(np.arange(n)), card.preprocess).to(device)
        if cuda:
            x_all = x_all.contiguous(memory_format=torch.channels_last)
        b = args.batch_size

        def bare() -> float:
            t = time.perf_counter()
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                for s in range(0, n, b):
                    z = encoder.embed(x_all[s : s + b]).to(torch.float16).cpu()
            sync_device(device)
            del z
            return time.perf_counter() - t

        def e2e() -> float:
            job = work / f"job-{time.perf_counter_ns()}"
            t = time.perf_counter()
            encode_survey(survey_dir, enc_dir, job, shard_size=args.shard_size, batch_size=b, device=str(device),
                          workers=args.workers)
            dt_ = time.perf_counter() - t
            shutil.rmtree(job)
            return dt_

        def baseline() -> float:
            t = time.perf_counter()
            for s in range(0, n, b):
                rows = np.arange(s, min(s + b, n))
                embed_array(encoder, card, survey.images(rows), device=device, batch_size=b).astype(np.float16)
            sync_device(device)
            return time.perf_counter() - t

        reader = RowReader(survey, [(s, min(s + b, n)) for s in range(0, n, b)], card, stretch=False)

        def read() -> float:
            t = time.perf_counter()
            for i in range(len(reader)):
                reader.read(*reader.ranges[i])
            return time.perf_counter() - t

        x_raw = torch.from_numpy(reader.read(0, min(n, b)))

        def stretch() -> float:
            reps = max(1, n // len(x_raw))
            t = time.perf_counter()
            for _ in range(reps):
                preprocess(x_raw, card.preprocess)
            return (time.perf_counter() - t) * n / (reps * len(x_raw))

        variants = {"bare": bare, "e2e": e2e, "baseline": baseline, "read": read, "stretch": stretch}
        if args.skip_baseline:
            del variants["baseline"]
        times: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats + 1):  # pass 0 is the warm-up
            for name, fn in variants.items():
                c0 = time.process_time()  # CPU seconds of every thread of this process
                sec = fn()
                c1 = time.process_time() - c0
                if rep:
                    times[name].append(sec)
                    cpu[name].append(c1)
                print(f"  {'warm-up' if rep == 0 else f'repeat {rep}'} {name:9s} {n / sec:9.1f} obj/s "
                      f"(wall), {n / max(c1, 1e-9):9.1f} obj/CPU-s", flush=True)
        survey.close()
        require_measured("bench_encode", objects=n, timed_repeats=args.repeats,
                         **{f"{k}_seconds": min(v, default=0.0) for k, v in times.items()})
        rate = {k: n / statistics.median(v) for k, v in times.items()}
        metrics = {f"{k}_objects_per_s": round(v, 1) for k, v in rate.items()}
        metrics["ratio_e2e_to_bare"] = round(rate["e2e"] / rate["bare"], 3)
        if "baseline" in rate:
            metrics["ratio_baseline_to_bare"] = round(rate["baseline"] / rate["bare"], 3)
        # CPU time is what other jobs on a shared machine cannot steal: the work per object
        cpu_rate = {k: n / statistics.median(v) for k, v in cpu.items() if k in ("bare", "e2e", "baseline")}
        metrics.update({f"{k}_objects_per_cpu_s": round(v, 1) for k, v in cpu_rate.items()})
        metrics["cpu_ratio_e2e_to_bare"] = round(cpu_rate["e2e"] / cpu_rate["bare"], 3)
        metrics["projected_hours_1e8_objects_e2e"] = round(TARGET_OBJECTS / rate["e2e"] / 3600, 1)
        metrics["projected_hours_1e8_objects_bare"] = round(TARGET_OBJECTS / rate["bare"] / 3600, 1)
        return {
            "benchmark": "bench_encode",
            "question": "end-to-end encoding rate vs bare inference; hours for 1e8 objects",
            "git_sha": git_sha(short=True),
            "date": utc_now_iso(),
            "command": command_line(),
            "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""),
            "machine": machine(),
            "settings": {"n_objects": n, "batch_size": b, "shard_size": args.shard_size, "workers": args.workers,
                         "precision": "bf16 autocast" if bf16 else "fp32", "backbone": card.backbone,
                         "backbone_kwargs": card.backbone_kwargs, "input_size_px": card.preprocess.input_size_px,
                         "stored_size_px": list(survey.image_shape), "bands": list(survey.bands),
                         "survey": str(survey_dir),
                         "seconds_per_repeat": {k: [round(t, 3) for t in v] for k, v in times.items()},
                         "cpu_seconds_per_repeat": {k: [round(t, 3) for t in v] for k, v in cpu.items()}},
            "metrics": metrics,
            "repeats": args.repeats,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(results: list[dict[str, Any]]) -> str:
    rows = ["| device | objects | batch | bare obj/s | end-to-end obj/s | e2e / bare (wall) | e2e / bare (CPU time) | "
            "old loop / bare | read-only obj/s | stretch obj/s | hours for 10^8 (e2e) | machine | date | command |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m, s, mach = r["metrics"], r["settings"], r["machine"]
        where = (f"{mach['cpu']}, {mach['cores']} cores, {mach['torch_threads']} torch threads, "
                 f"OMP_WAIT_POLICY {mach.get('omp_wait_policy', '?')}, load {mach['load_avg_1min_at_start']:.1f}")
        if "gpu" in mach:
            where = f"{mach['gpu']}; " + where
        rows.append(
            f"| {r['device']} | {s['n_objects']} | {s['batch_size']} | {m['bare_objects_per_s']} | "
            f"{m['e2e_objects_per_s']} | {m['ratio_e2e_to_bare']} | {m.get('cpu_ratio_e2e_to_bare', '')} | "
            f"{m.get('ratio_baseline_to_bare', '')} | "
            f"{m['read_objects_per_s']} | {m['stretch_objects_per_s']} | {m['projected_hours_1e8_objects_e2e']} | "
            f"{where} | {r['date'][:10]} | `{r['command']}` |")
    return "\n".join(rows)


def write_markdown(doc: Path) -> None:
    results = []
    for p in sorted(RESULTS_DIR.glob("encode*.json")):
        r = json.loads(p.read_text())
        if r.get("benchmark") == "bench_encode":
            results.append(r)
    note = "<!-- generated by bench/bench_encode.py --markdown from bench/results/encode*.json -->"
    fill_markers(doc, BEGIN, END, f"{note}\n{markdown(results)}", append=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--survey", type=Path, help="native survey folder (default: simulate one)")
    ap.add_argument("--simulate", type=int, default=2000, help="objects to simulate when --survey is not given")
    ap.add_argument("--sim-dir", default="/tmp/skysift_bench/survey")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--shard-size", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--omp-default", action="store_true", help="keep libgomp's default wait policy (spinning)")
    ap.add_argument("--out", type=Path, help="JSON result file (bench/results/encode_<device>.json)")
    ap.add_argument("--markdown", type=Path, help="only rewrite the table in this markdown file")
    args = ap.parse_args()
    if args.markdown:
        write_markdown(args.markdown)
        return
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
