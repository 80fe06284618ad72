"""The MoCo v2 training loop: data -> two augmented views -> MoCo step, with checkpoints and export.

    skysift train --survey data/demo --out runs/demo --epochs 8
    skysift train --survey data/demo --out runs/demo --epochs 8 --resume      # after a crash or a kill
    torchrun --nproc_per_node=4 -m skysift.cli train --survey data/bench --out runs/bench --backbone resnet50

A checkpoint holds everything the next step depends on: both encoders (BatchNorm statistics
included), the queue and its pointer, the optimiser's momentum buffers, every rank's generators
(augmentations, key shuffle, torch's global RNG) and the step. The data order is a pure function
of (seed, epoch, rank), so a resumed run replays exactly the batches it had not trained on and
reaches the same weights, bit for bit on the same machine, as a run that was never interrupted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from encoder.card import ModelCard
from encoder.model import Encoder
from encoder.preprocess import PreprocessConfig, for_survey, preprocess
from encoder.weights import load_encoder, save_encoder

from . import dist
from .augment import (
    AugmentSettings,
    UnknownBands,
    augment,
    check_geometry,
    extinction_coeffs,
    photometric,
    resolve_bands,
)
from .data import EpochBatchSampler, SurveyBatches, make_loader
from .errors import InitEncoderMismatch, RankDivergence, ResumeMismatch
from .moco import MoCo
from .monitor import knn_monitor
from .settings import TrainSettings, resolve_sizes

CHECKPOINT = "checkpoint.pt"
logger = logging.getLogger("skysift.train")
METRICS = "metrics.jsonl"
# Settings that shape the trajectory: a checkpoint only continues a run that agrees on all of them.
RESUME_KEYS = ("backbone", "backbone_kwargs", "small_input", "proj_dim", "proj_hidden", "queue_size", "momentum",
               "temperature", "optimizer", "lr_per_256", "weight_decay", "sgd_momentum", "schedule", "warmup_steps",
               "batch_size", "epochs", "augment", "seed", "init_encoder")
AUG_STREAM, SHUFFLE_STREAM = 1, 2


def make_card(s: TrainSettings, ds: SurveyBatches, encoder: Encoder) -> ModelCard:
    """The card, its preprocessing defined on the training survey's recorded units (survey.units)."""
    units = ds.survey.units
    pre = for_survey(PreprocessConfig(
        bands=ds.survey.bands, pixel_scale_arcsec=ds.survey.pixel_scale_arcsec,
        input_size_px=s.augment.crop_size_px, band_scale=(1.0,) * len(ds.survey.bands), kind=units.kind,
        units=tuple(b.units for b in units.per_band), smooth_px=s.smooth_px,
    ), units)
    return ModelCard(
        backbone=s.backbone, backbone_kwargs=s.backbone_kwargs, small_input=s.small_input,
        embedding_dim=encoder.embedding_dim, projection_dim=s.proj_dim, projection_hidden=s.proj_hidden,
        preprocess=pre, readout=s.readout, produced_by=s.produced_by,
        training={"settings": s.model_dump(mode="json"),
                  "data": {"survey": str(s.survey), "survey_name": ds.survey.survey_name, "n_objects": len(ds)}},
    )


def reddening(s: TrainSettings, ds: SurveyBatches) -> tuple[TrainSettings, Tensor, dict[str, Any]]:
    """The reddening augmentation this survey allows: (settings, coeffs (C,), what the card records).

    Re-reddening needs the catalogue's E(B-V) (to de-redden first) and A_band / E(B-V) for every band
    (augment.EXTINCTION). Without either it is switched off for the run, in the settings that the
    checkpoint and the card keep, with one note that rank 0 logs and the card's training section keeps.
    """
    bands = ds.survey.bands
    zeros = torch.zeros(len(bands))
    if not s.augment.redden:
        return s, zeros, {}
    why = None
    if "ebv" not in ds.survey.catalog:
        why = "the survey has no `ebv` column, so its images cannot be de-reddened first"
    else:
        try:
            systems = resolve_bands(bands)
        except UnknownBands as e:
            why = str(e)
    if why is not None:
        note = f"reddening augmentation off: {why}"
        if dist.rank() == 0:
            logger.warning(note)
        off = s.model_copy(update={"augment": s.augment.model_copy(update={"redden": False})})
        return off, zeros, {"notes": [note]}
    coeffs = extinction_coeffs(bands)
    return s, coeffs, {"extinction": {b: {"filter": f"{sys}_{key}", "a_over_ebv": round(float(c), 4)}
                                      for b, (sys, key), c in zip(bands, systems, coeffs, strict=True)}}


def lr_at(step: int, total: int, base: float, s: TrainSettings) -> float:
    """Linear warm-up, then constant or cosine decay to 0 at `total` steps (MoCo v2)."""
    if s.warmup_steps and step < s.warmup_steps:
        return base * (step + 1) / s.warmup_steps
    if s.schedule == "constant":
        return base
    return base * 0.5 * (1 + math.cos(math.pi * step / max(1, total)))


def stream_seed(seed: int, rank: int, stream: int) -> int:
    """Independent seeds per (run seed, rank, stream); `seed*1000 + rank + 1` made rank 1's
    augmentations replay rank 0's shuffles."""
    return int(np.random.SeedSequence([seed, rank, stream]).generate_state(1)[0])


def make_views(batch: dict[str, Tensor], coeffs: Tensor, pixel_scale_arcsec: float, pre: PreprocessConfig,
               aug: AugmentSettings, generator: torch.Generator, channels_last: bool = False) -> list[Tensor]:
    """Two augmented, preprocessed views (N, C, S, S) of one batch already on the device."""
    views = []
    for _ in range(2):
        x = augment(batch["images"], ebv=batch["ebv"], psf_fwhm_arcsec=batch["fwhm"], noise_sigma=batch["noise"],
                    coeffs=coeffs, pixel_scale_arcsec=pixel_scale_arcsec, settings=aug, generator=generator)
        x = photometric(x, pre.band_offset, pre.band_scale, aug, generator)
        x = preprocess(x, pre, crop=False)
        views.append(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    return views


def train_step(step_fn: Callable[..., tuple[Tensor, Tensor]], opt: torch.optim.Optimizer, views: list[Tensor],
               shuffle_gen: torch.Generator, lr: float, use_bf16: bool) -> Tensor:
    """One SGD step of MoCo (queries from views[0], keys from views[1]); returns the detached loss."""
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast(views[0].device.type, dtype=torch.bfloat16, enabled=use_bf16):
        loss, _ = step_fn(views[0], views[1], shuffle_gen)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def build_moco(s: TrainSettings, n_bands: int, device: torch.device,
               channels_last: bool | None = None) -> tuple[MoCo, torch.optim.Optimizer]:
    """MoCo on `device` and its SGD optimiser; channels_last None = s.channels_last on CUDA only."""
    encoder = Encoder(s.backbone, n_bands, s.proj_dim, s.proj_hidden, s.small_input, s.backbone_kwargs, s.readout)
    model = MoCo(encoder, s.queue_size, s.momentum, s.temperature).to(device)
    if channels_last is None:
        channels_last = s.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.encoder_q.parameters(), lr=0.0, momentum=s.sgd_momentum,
                          weight_decay=s.weight_decay, fused=(device.type == "cuda") or None)
    return model, opt


def init_from_encoder(model: MoCo, path: Path, s: TrainSettings, ds: SurveyBatches) -> dict[str, Any]:
    """Load the weights of the encoder folder `path` into both MoCo encoders; what the new card
    records of it.

    The queue starts as in any run (random unit vectors) and holds only the loaded key encoder's
    keys after K / batch steps. Refuses (InitEncoderMismatch) an encoder of another architecture, band
    set or kind of units, whose channels would mean something else here.
    """
    encoder, card = load_encoder(path, "cpu")
    want = {"backbone": s.backbone, "backbone_kwargs": s.backbone_kwargs, "small_input": s.small_input,
            "projection_dim": s.proj_dim, "projection_hidden": s.proj_hidden,
            "bands": list(ds.survey.bands), "kind": ds.survey.units.kind}
    have = {"backbone": card.backbone, "backbone_kwargs": card.backbone_kwargs, "small_input": card.small_input,
            "projection_dim": card.projection_dim, "projection_hidden": card.projection_hidden,
            "bands": list(card.bands), "kind": card.preprocess.kind}
    diff = [f"{k} {have[k]!r} (run: {want[k]!r})" for k in want if have[k] != want[k]]
    if diff:
        raise InitEncoderMismatch(f"--init-encoder {path}: " + "; ".join(diff)
                                  + "; train with its architecture (--backbone, --backbone-kwargs, --proj-dim, "
                                  "--proj-hidden) on a survey of its bands and units")
    state = encoder.state_dict()
    model.encoder_q.load_state_dict(state)
    model.encoder_k.load_state_dict(state)
    return {"encoder": str(path), "weights_sha256": card.weights_sha256, "produced_by": card.produced_by,
            "images_seen": images_seen(card)}


def images_seen(card: ModelCard) -> int | None:
    """Images an encoder's training showed it in all, earlier runs it started from included (cards
    before `images_seen` was recorded: steps x the per-process batch, one process)."""
    if "images_seen_total" in card.metrics:
        return int(card.metrics["images_seen_total"])
    steps, batch = card.metrics.get("steps"), card.training.get("settings", {}).get("batch_size")
    return int(steps) * int(batch) if steps is not None and batch is not None else None


def sync_fingerprint(model: MoCo) -> str:
    """What DDP keeps identical on every rank: both encoders' parameters, the queue and its pointer.
    (BatchNorm running statistics legitimately differ between ranks until DDP's next broadcast.)"""
    return dist.fingerprint([*model.encoder_q.parameters(), *model.encoder_k.parameters(), model.queue,
                             model.queue_ptr])


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _check_resumable(ck: dict[str, Any], s: TrainSettings, world: int, n_objects: int, path: Path) -> None:
    missing = [k for k in ("rng", "world_size", "n_objects", "loss", "settings") if k not in ck]
    if missing:  # skysift before 0.1.0 kept one process's generators at the top level
        raise ResumeMismatch(f"{path}: cannot resume a checkpoint of this older format (no {', '.join(missing)}); "
                             "start the run again without --resume")
    then, now = ck["settings"], s.model_dump(mode="json")
    diff = [k for k in RESUME_KEYS if then.get(k) != now.get(k)]
    if diff:
        raise ResumeMismatch(f"{path}: cannot resume, settings differ from the checkpoint's: "
                             + ", ".join(f"{k} {then.get(k)!r} -> {now.get(k)!r}" for k in diff))
    if ck["world_size"] != world:
        raise ResumeMismatch(f"{path}: written by {ck['world_size']} process(es), resumed with {world}; "
                             "the data split and generators are per rank")
    if ck["n_objects"] != n_objects:
        raise ResumeMismatch(f"{path}: trained on {ck['n_objects']} objects, the survey now has {n_objects}")


def _open_metrics(path: Path, keep_until_step: int | None):
    """Fresh run: truncate. Resumed run: drop records past the checkpoint (they are about to be redone)."""
    kept = []
    if keep_until_step is not None and path.exists():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= keep_until_step]
    f = open(path, "w")
    f.writelines(line + "\n" for line in kept)
    f.flush()
    return f


def train(s: TrainSettings, on_step: Callable[[dict[str, float]], None] | None = None, *,
          launched: bool = False, local_rank: int = 0) -> Path:
    """Train, checkpoint, export `model.safetensors` + `model.json` into s.out_dir/encoder.

    Returns the encoder directory. With s.resume, continues from s.out_dir/checkpoint.pt when it
    exists. `on_step` gets every metrics record rank 0 writes (loss every `log_every` steps, the
    kNN monitor at each epoch end). `launched` (this process is one of a torchrun group) and
    `local_rank` are what the entry point read from torchrun's variables; the default is one process.
    """
    kind = "cuda" if (s.device == "auto" and torch.cuda.is_available()) or s.device == "cuda" else "cpu"
    device = dist.setup(kind, launched, local_rank)
    rank, world = dist.rank(), dist.world_size()
    torch.manual_seed(s.seed + rank)  # model init; DDP then broadcasts rank 0's weights and buffers
    out = Path(s.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    ds = SurveyBatches(s.survey, memory_limit_bytes=int(s.cache_gb * 2**30))
    # Batch and queue fitted to the survey where not given, and the reddening the survey allows: the
    # resolved settings are what the checkpoint keeps and a resumed run is compared with.
    s = resolve_sizes(s, len(ds), world)
    s, coeffs, red = reddening(s, ds)
    check_geometry(s.augment, ds.survey.image_shape[-2:])
    model, opt = build_moco(s, len(ds.survey.bands), device)
    card = make_card(s, ds, model.encoder_q)
    card.training.update(red)
    if s.init_encoder is not None:  # a resumed run then overwrites these weights from its checkpoint
        card.training["init"] = init_from_encoder(model, Path(s.init_encoder), s, ds)
    use_bf16 = s.precision == "bf16" or (s.precision == "auto" and device.type == "cuda")
    channels_last = s.channels_last and device.type == "cuda"
    aug_gen = torch.Generator(device=device).manual_seed(stream_seed(s.seed, rank, AUG_STREAM))
    shuffle_gen = torch.Generator().manual_seed(stream_seed(s.seed, rank, SHUFFLE_STREAM))

    steps_per_epoch = len(EpochBatchSampler(len(ds), s.batch_size, s.seed, 0, rank, world))
    if steps_per_epoch == 0:
        raise ValueError(f"survey of {len(ds)} objects has no full batch of {s.batch_size} per process")
    total = steps_per_epoch * s.epochs  # the schedule's length
    stop = total if s.max_steps is None else min(s.max_steps, total)
    base_lr = s.lr_per_256 * s.batch_size * world / 256
    step, last_loss, resumed = 0, float("nan"), False
    ckpt_path = out / CHECKPOINT
    if s.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        _check_resumable(ck, s, world, len(ds), ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, last_loss, resumed = int(ck["step"]), float(ck["loss"]), True
        rng = ck["rng"][rank]
        aug_gen.set_state(rng["aug_gen"])
        shuffle_gen.set_state(rng["shuffle_gen"])
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)

    net: torch.nn.Module = model
    if dist.is_dist():  # syncs rank 0's weights and buffers (encoders, queue) to every rank at construction
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(net) if s.compile else net
    coeffs = coeffs.to(device)
    monitor = _monitor_set(ds, s.monitor_size) if rank == 0 else None
    log = _open_metrics(out / METRICS, step if resumed else None) if rank == 0 else None

    def emit(rec: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if on_step:
                on_step(rec)

    def checkpoint() -> None:
        """Collective: every rank contributes its generators and a fingerprint; rank 0 writes."""
        rng = {"aug_gen": aug_gen.get_state(), "shuffle_gen": shuffle_gen.get_state(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        rngs = dist.gather_objects(rng)
        prints = dist.gather_objects(sync_fingerprint(model))
        if len(set(prints)) > 1:
            raise RankDivergence(f"step {step}: ranks hold different weights or queues "
                                 f"(fingerprints {[p[:12] for p in prints]})")
        if rank == 0:
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                          "loss": last_loss, "rng": rngs, "fingerprints": prints, "world_size": world,
                          "n_objects": len(ds), "settings": s.model_dump(mode="json")}, ckpt_path)

    p10 = None
    if monitor is not None and step == 0:  # where the curve starts: the randomly initialised encoder
        p10 = knn_monitor(model.encoder_q, card, monitor[0], monitor[1], device)
        emit({"step": 0, "epoch": 0, "knn_precision_at_10": p10})
    model.train()
    t0, seen = time.perf_counter(), 0
    while step < stop:
        epoch, skip = divmod(step, steps_per_epoch)
        loader = make_loader(ds, EpochBatchSampler(len(ds), s.batch_size, s.seed, epoch, rank, world, skip),
                             0 if ds.cached is not None else s.workers, pin_memory=device.type == "cuda")
        for batch in loader:
            b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            views = make_views(b, coeffs, ds.survey.pixel_scale_arcsec, card.preprocess, s.augment, aug_gen,
                               channels_last)
            lr = lr_at(step, total, base_lr, s)
            loss = train_step(step_fn, opt, views, shuffle_gen, lr, use_bf16)
            step += 1
            seen += len(b["images"]) * world
            if step % s.log_every == 0 or step == stop:
                last_loss = dist.all_reduce_mean(float(loss), device)  # collective: every rank logs together
                emit({"step": step, "epoch": epoch, "loss": last_loss, "lr": lr,
                      "images_per_s": seen / (time.perf_counter() - t0)})
            if step % s.checkpoint_every == 0 or step == stop:
                checkpoint()
            if step >= stop:
                break
        if monitor is not None and (step % steps_per_epoch == 0 or step >= stop):
            p10 = knn_monitor(model.encoder_q, card, monitor[0], monitor[1], device)
            emit({"step": step, "epoch": epoch, "knn_precision_at_10": p10})
    enc_dir = out / "encoder"
    if rank == 0:
        card = card.model_copy(update={
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metrics": {"final_loss": last_loss, "steps": step, "images_seen": step * s.batch_size * world,
                        "images_seen_total": step * s.batch_size * world
                        + (card.training.get("init", {}).get("images_seen") or 0),
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
