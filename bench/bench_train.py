"""How much of the bare MoCo step's throughput does the whole training pipeline keep?

In ONE run, for the same model, batch size and device:
  * bare:      `training.loop.train_step` (MoCo forward, shuffled-BN key forward, backward, SGD step)
               on two synthetic views already preprocessed and on the device (the ceiling);
  * pipeline:  what `training.loop.train` does per step: HDF5 shards read by DataLoader workers,
               copy to the device, two augmented views (`training.augment` on the device),
               arcsinh preprocessing, then the same `train_step`;
  * stages:    the loader alone (workers reading, nothing else running), the main process reading
               alone, and augmentation + preprocessing alone, to say where pipeline time goes.
Repeats are interleaved (bare, pipeline, stages, bare, ...) so that load from other jobs on a
shared machine hits every variant alike; warm-up steps are dropped (the first pass of the bare
step, and the first steps of each fresh loader); medians reported. Images/s counts images of the
batch (each makes two views), as `train` logs it.

Usage (repository root):
    nice -n 10 .venv/bin/python bench/bench_train.py --survey /tmp/demo_run/data/demo --out bench/results/train_cpu.json
    .venv/bin/python bench/bench_train.py --device cuda --backbone resnet50 --backbone-kwargs '{}' --crop 96 \\
        --stamp-px 160 --batch-size 256 --queue-size 65536 --workers 8 --compile --out bench/results/train_cuda.json
    # the CUDA code path (bf16 autocast, channels_last, torch.compile) at toy size on the CPU:
    .venv/bin/python bench/bench_train.py --device cpu --gpu-path --simulate 300 --batch-size 16 --queue-size 64 \\
        --backbone-kwargs '{"channels": [8, 16, 32, 64], "stem_width": 8}' --steps 2 --repeats 1 --out /tmp/t.json
    .venv/bin/python bench/bench_train.py --markdown docs/training.md   # table from bench/results/train*.json

Without --survey, a survey of --simulate objects at --stamp-px is simulated once into
/tmp/skysift_bench_train/ (survey.simulate, seed 0). Model default: the training default
(training/settings.py), half-width ResNet-18 on 32 px crops, randomly initialised.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import (
    RESULTS_DIR,
    command_line,
    fill_markers,
    git_sha,
    median_min_max,
    require_measured,
    sync_device,
    torch_machine,
    utc_now_minutes,
    write_json,
)

from training.augment import AugmentSettings, check_geometry, extinction_coeffs
from training.data import EpochBatchSampler, SurveyBatches, make_loader
from training.loop import build_moco, make_card, make_views, train_step
from training.settings import TrainSettings

BEGIN, END = "<!-- bench_train:begin -->", "<!-- bench_train:end -->"


def machine(device: torch.device) -> dict[str, Any]:
    out = torch_machine(device=str(device), load_avg_1min_at_start=os.getloadavg()[0])
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def simulate_survey(n: int, stamp_px: int) -> Path:
    from survey.simulate.settings import SimSettings
    from survey.simulate.survey import simulate

    out = Path(tempfile.gettempdir()) / "skysift_bench_train" / f"sim-{n}-{stamp_px}px"
    if not any(out.glob("shard-*.h5")):
        simulate(SimSettings(out_dir=out, preset="tiny", n_objects=n, size_px=stamp_px, seed=0))
    return out


def summary(values: list[float]) -> dict[str, Any]:
    return {**median_min_max(values), "all": values}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    host = machine(device)
    survey = Path(args.survey) if args.survey else simulate_survey(args.simulate, args.stamp_px)
    gpu_path = cuda or args.gpu_path
    s = TrainSettings(
        survey=survey, out_dir=Path(tempfile.gettempdir()) / "skysift_bench_train" / "run", backbone=args.backbone,
        backbone_kwargs=json.loads(args.backbone_kwargs) if args.backbone_kwargs else TrainSettings().backbone_kwargs,
        batch_size=args.batch_size, queue_size=args.queue_size, augment=AugmentSettings(crop_size_px=args.crop),
        precision="bf16" if gpu_path else "fp32", compile=args.compile, channels_last=gpu_path, device=args.device,
        workers=args.workers, monitor_size=0, seed=0,
    )
    ds = SurveyBatches(survey)
    check_geometry(s.augment, ds.survey.image_shape[-2:])
    model, opt = build_moco(s, len(ds.survey.bands), device, channels_last=s.channels_last)
    card = make_card(s, ds, model.encoder_q)
    model.train()
    step_fn = torch.compile(model) if s.compile else model
    use_bf16 = s.precision == "bf16"
    aug_gen = torch.Generator(device=device).manual_seed(0)
    shuffle_gen = torch.Generator().manual_seed(1)
    coeffs = extinction_coeffs(ds.survey.bands).to(device)
    lr = s.lr_per_256 * s.batch_size / 256
    n, c, crop = s.batch_size, len(ds.survey.bands), s.augment.crop_size_px
    batches_per_epoch = len(EpochBatchSampler(len(ds), n, 0, 0))
    if batches_per_epoch < args.warmup + args.steps:
        raise SystemExit(f"{len(ds)} objects give {batches_per_epoch} batches of {n}; "
                         f"need warm-up {args.warmup} + steps {args.steps}")
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    synthetic = [torch.randn(n, c, crop, crop, device=device).contiguous(memory_format=fmt) for _ in range(2)]

    def timed(fn: Callable[[], None], steps: int, warmup: int) -> float:
        """images/s of `steps` calls after `warmup` dropped calls."""
        for _ in range(warmup):
            fn()
        sync_device(device)
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        sync_device(device)
        return n * steps / (time.perf_counter() - t)

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def views_of(b: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return make_views(b, coeffs, ds.survey.pixel_scale_arcsec, card.preprocess, s.augment, aug_gen,
                          s.channels_last)

    def bare_step() -> None:
        train_step(step_fn, opt, synthetic, shuffle_gen, lr, use_bf16)

    def loader(epoch: int):
        return iter(make_loader(ds, EpochBatchSampler(len(ds), n, 0, epoch), s.workers, pin_memory=cuda))

    def pipeline(epoch: int) -> float:
        it = loader(epoch)
        return timed(lambda: train_step(step_fn, opt, views_of(to_device(next(it))), shuffle_gen, lr, use_bf16),
                     args.steps, args.warmup)

    def read_workers(epoch: int) -> float:
        it = loader(epoch)
        return timed(lambda: to_device(next(it)), args.steps, args.warmup)

    rows = EpochBatchSampler(len(ds), n, 0, 0).batches()

    def read_main() -> float:
        k = iter(range(10**9))
        return timed(lambda: ds[rows[next(k) % len(rows)]], args.steps, 0)

    one = to_device(ds[rows[0]])

    def augment_only() -> float:
        return timed(lambda: views_of(one), args.steps, 1)

    t_start = time.perf_counter()
    timed(bare_step, 0, args.warmup)  # compile, allocator, oneDNN primitive caches
    results: dict[str, list[float]] = {k: [] for k in ("bare", "pipeline", "read_workers", "read_main", "augment")}
    for r in range(args.repeats):
        results["bare"].append(timed(bare_step, args.steps, 0))
        results["pipeline"].append(pipeline(epoch=r))
        results["read_workers"].append(read_workers(epoch=100 + r))
        results["read_main"].append(read_main())
        results["augment"].append(augment_only())
    require_measured("train", objects=len(ds), timed_steps=args.steps, repeats=args.repeats)
    ratio = [p / b for p, b in zip(results["pipeline"], results["bare"], strict=True)]
    med = {k: statistics.median(v) for k, v in results.items()}
    # If reading overlaps (workers) but augmentation and the step share the main process serially,
    # the pipeline can reach at most 1 / (1/bare + 1/augment).
    serial_bound = 1.0 / (1.0 / med["bare"] + 1.0 / med["augment"])
    host["load_avg_1min_at_end"] = os.getloadavg()[0]
    return {
        "name": "train",
        "git_sha": git_sha(short=True),
        "date": utc_now_minutes(),
        "command": command_line("python", "bench/bench_train.py"),
        "machine": host,
        "settings": {
            "survey": str(survey), "n_objects": len(ds), "stamp_px": ds.survey.image_shape[-1], "crop_px": crop,
            "bands": list(ds.survey.bands), "backbone": s.backbone, "backbone_kwargs": s.backbone_kwargs,
            "batch_size": n, "queue_size": s.queue_size, "workers": s.workers, "precision": s.precision,
            "channels_last": s.channels_last, "compile": s.compile, "augment": s.augment.model_dump(),
            "steps_per_repeat": args.steps, "warmup_steps_dropped": args.warmup,
        },
        "repeats": args.repeats,
        "metrics": {
            "bare_images_per_s": summary(results["bare"]),
            "pipeline_images_per_s": summary(results["pipeline"]),
            "pipeline_over_bare": summary(ratio),
            "stage_read_workers_images_per_s": summary(results["read_workers"]),
            "stage_read_main_images_per_s": summary(results["read_main"]),
            "stage_augment_images_per_s": summary(results["augment"]),
            "serial_bound_images_per_s": serial_bound,
        },
        "wall_s": time.perf_counter() - t_start,
    }


def markdown_table(results_dir: Path) -> str:
    rows = ["| device | model | input | batch | workers | bare step img/s | pipeline img/s | pipeline / bare "
            "| read (workers) img/s | augment img/s | serial bound img/s | load avg | date, SHA |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("train*.json")):
        r = json.loads(path.read_text())
        st, m, h = r["settings"], r["metrics"], r["machine"]
        dev = h.get("gpu") or f"CPU {h['cores']} cores ({h['cpu']}), {h['torch_threads']} torch thread(s)"
        kw = st["backbone_kwargs"].get("channels")
        model = st["backbone"] + (f" {'-'.join(map(str, kw))}" if kw else "")
        extras = ", ".join(x for x in ("bf16" if st["precision"] == "bf16" else "",
                                       "channels_last" if st["channels_last"] else "",
                                       "compile" if st["compile"] else "") if x)
        rows.append(
            f"| {dev} | {model}{f' ({extras})' if extras else ''} | {len(st['bands'])}x{st['crop_px']}x{st['crop_px']}"
            f" from {st['stamp_px']} px | {st['batch_size']} | {st['workers']} "
            f"| {m['bare_images_per_s']['median']:.0f} | {m['pipeline_images_per_s']['median']:.0f} "
            f"| {m['pipeline_over_bare']['median']:.2f} | {m['stage_read_workers_images_per_s']['median']:.0f} "
            f"| {m['stage_augment_images_per_s']['median']:.0f} | {m['serial_bound_images_per_s']:.0f} "
            f"| {h['load_avg_1min_at_start']:.1f} -> {h['load_avg_1min_at_end']:.1f} | {r['date']}, {r['git_sha']} |")
    return "\n".join(rows)


def write_markdown(doc: Path, results_dir: Path) -> None:
    fill_markers(doc, BEGIN, END, markdown_table(results_dir), append=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--survey", help="native survey folder (read-only); default: simulate one")
    p.add_argument("--simulate", type=int, default=2000, help="objects to simulate when no --survey")
    p.add_argument("--stamp-px", type=int, default=64, help="stamp size when simulating")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--backbone-kwargs", help="JSON; default: the training default (half-width ResNet-18)")
    p.add_argument("--crop", type=int, default=32, help="augmented crop = encoder input (px)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--queue-size", type=int, default=4096)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--gpu-path", action="store_true", help="bf16 autocast + channels_last even on the CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the MoCo module")
    p.add_argument("--steps", type=int, default=8, help="timed steps per repeat and variant")
    p.add_argument("--warmup", type=int, default=2, help="dropped steps (first bare pass; each fresh loader)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="JSON result file (bench/results/train_<device>.json)")
    p.add_argument("--markdown", type=Path, help="only rewrite the table in this doc from bench/results/train*.json")
    args = p.parse_args()
    if args.markdown:
        write_markdown(args.markdown, RESULTS_DIR)
        return
    res = run(args)
    text = json.dumps(res, indent=2) + "\n"
    if args.out:
        write_json(args.out, res)
    print(text)


if __name__ == "__main__":
    main()
