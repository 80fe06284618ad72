"""The MoCo v2 training loop: data -> two augmented views -> MoCo step, with checkpoints and export.

    skysift train --survey data/demo --out runs/demo --epochs 8
    torchrun --nproc_per_node=4 -m skysift.cli train --survey data/bench --out runs/bench --backbone resnet50
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from encoder.card import ModelCard
from encoder.model import Encoder
from encoder.preprocess import PreprocessConfig, preprocess
from encoder.weights import save_encoder

from . import dist
from .augment import augment, check_geometry, extinction_coeffs
from .data import EpochBatchSampler, SurveyBatches, border_noise_sigma, make_loader
from .moco import MoCo
from .monitor import knn_monitor
from .settings import TrainSettings

CHECKPOINT = "checkpoint.pt"


def band_scale(ds: SurveyBatches, sample: int = 512) -> tuple[float, ...]:
    """Median per-band sky noise: where the arcsinh stretch turns from linear to logarithmic."""
    if ds.conditions.noise is not None:
        return tuple(float(v) for v in np.median(ds.conditions.noise, axis=0))
    rows = np.linspace(0, len(ds) - 1, min(sample, len(ds))).astype(int)
    return tuple(float(v) for v in np.median(border_noise_sigma(ds.survey.images(rows)), axis=0))


def make_card(s: TrainSettings, ds: SurveyBatches, encoder: Encoder) -> ModelCard:
    pre = PreprocessConfig(
        bands=ds.survey.bands, pixel_scale_arcsec=ds.survey.pixel_scale_arcsec,
        input_size_px=s.augment.crop_size_px, band_scale=band_scale(ds),
    )
    return ModelCard(
        backbone=s.backbone, backbone_kwargs=s.backbone_kwargs, small_input=s.small_input,
        embedding_dim=encoder.embedding_dim, projection_dim=s.proj_dim, projection_hidden=s.proj_hidden,
        preprocess=pre, produced_by=s.produced_by,
        training={"settings": s.model_dump(mode="json"),
                  "data": {"survey": str(s.survey), "survey_name": ds.survey.survey_name, "n_objects": len(ds)}},
    )


def lr_at(step: int, total: int, base: float, s: TrainSettings) -> float:
    if s.warmup_steps and step < s.warmup_steps:
        return base * (step + 1) / s.warmup_steps
    if s.schedule == "constant":
        return base
    return base * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(s: TrainSettings, on_step: Callable[[dict[str, float]], None] | None = None) -> Path:
    """Train, checkpoint, export `model.safetensors` + `model.json` into s.out_dir/encoder.

    Returns the encoder directory. With s.resume, continues from s.out_dir/checkpoint.pt.
    """
    kind = "cuda" if (s.device == "auto" and torch.cuda.is_available()) or s.device == "cuda" else "cpu"
    device = dist.setup(kind)
    rank, world = dist.rank(), dist.world_size()
    if s.queue_size % (s.batch_size * world):
        raise ValueError(f"queue_size {s.queue_size} is not a multiple of the global batch {s.batch_size * world}")
    torch.manual_seed(s.seed + rank)
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    ds = SurveyBatches(s.survey)
    check_geometry(s.augment, ds.survey.image_shape[-2:])
    encoder = Encoder(s.backbone, len(ds.survey.bands), s.proj_dim, s.proj_hidden, s.small_input, s.backbone_kwargs)
    card = make_card(s, ds, encoder)
    model = MoCo(encoder, s.queue_size, s.momentum, s.temperature).to(device)
    use_bf16 = s.precision == "bf16" or (s.precision == "auto" and device.type == "cuda")
    if s.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    fused = device.type == "cuda"
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.0, momentum=s.sgd_momentum,
                          weight_decay=s.weight_decay, fused=fused or None)
    aug_gen = torch.Generator(device=device).manual_seed(s.seed * 1000 + rank)
    shuffle_gen = torch.Generator().manual_seed(s.seed * 1000 + rank + 1)

    steps_per_epoch = len(EpochBatchSampler(len(ds), s.batch_size, s.seed, 0, rank, world))
    if steps_per_epoch == 0:
        raise ValueError(f"survey of {len(ds)} objects has no full batch of {s.batch_size} per process")
    total = steps_per_epoch * s.epochs if s.max_steps is None else min(s.max_steps, steps_per_epoch * s.epochs)
    base_lr = s.lr_per_256 * s.batch_size * world / 256
    step = 0
    ckpt_path = out / CHECKPOINT
    if s.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step = int(ck["step"])
        aug_gen.set_state(ck["aug_gen"].cpu() if device.type == "cpu" else ck["aug_gen"].cpu())
        shuffle_gen.set_state(ck["shuffle_gen"].cpu())
        torch.set_rng_state(ck["torch_rng"].cpu())

    net: torch.nn.Module = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.is_dist() else model
    step_fn = torch.compile(net) if s.compile else net
    coeffs = extinction_coeffs(ds.survey.bands).to(device)
    monitor = _monitor_set(ds, s.monitor_size) if rank == 0 else None
    log = open(out / "metrics.jsonl", "a") if rank == 0 else None

    def checkpoint() -> None:
        if rank == 0:
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                          "aug_gen": aug_gen.get_state(), "shuffle_gen": shuffle_gen.get_state(),
                          "torch_rng": torch.get_rng_state(), "settings": s.model_dump(mode="json")}, ckpt_path)

    model.train()
    t0, seen = time.perf_counter(), 0
    loss, p10 = torch.tensor(float("nan")), None
    while step < total:
        epoch, skip = divmod(step, steps_per_epoch)
        loader = make_loader(ds, EpochBatchSampler(len(ds), s.batch_size, s.seed, epoch, rank, world, skip),
                             s.workers, pin_memory=device.type == "cuda")
        for batch in loader:
            b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            views = []
            for _ in range(2):
                x = augment(b["images"], ebv=b["ebv"], psf_fwhm_arcsec=b["fwhm"], noise_sigma=b["noise"], coeffs=coeffs,
                            pixel_scale_arcsec=ds.survey.pixel_scale_arcsec, settings=s.augment, generator=aug_gen)
                x = preprocess(x, card.preprocess, crop=False)
                views.append(x.contiguous(memory_format=torch.channels_last) if s.channels_last and device.type == "cuda" else x)
            lr = lr_at(step, total, base_lr, s)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss, _ = step_fn(views[0], views[1], shuffle_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(b["images"]) * world
            if rank == 0 and (step % s.log_every == 0 or step == total):
                rec = {"step": step, "epoch": epoch, "loss": float(loss.detach()), "lr": lr,
                       "images_per_s": seen / (time.perf_counter() - t0)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if on_step:
                    on_step(rec)
            if step % s.checkpoint_every == 0:
                checkpoint()
            if step >= total:
                break
        if monitor is not None and (step % steps_per_epoch == 0 or step >= total):
            p10 = knn_monitor(model.encoder_q, card, monitor[0], monitor[1], device)
            rec = {"step": step, "epoch": epoch, "knn_precision_at_10": p10}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if on_step:
                on_step(rec)
    checkpoint()
    enc_dir = out / "encoder"
    if rank == 0:
        card = card.model_copy(update={
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metrics": {"final_loss": float(loss.detach()), "steps": step,
                        **({"knn_precision_at_10": p10} if p10 is not None else {})},
        })
        save_encoder(model.encoder_q, card, enc_dir)
    if log:
        log.close()
    dist.cleanup()
    return enc_dir


def _monitor_set(ds: SurveyBatches, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    if size <= 0 or "class" not in ds.survey.catalog:
        return None
    rows = np.linspace(0, len(ds) - 1, min(size, len(ds))).astype(int)
    return ds.survey.images(rows), np.asarray(ds.survey.catalog["class"][rows]).astype(str)
