"""`skysift train`: MoCo v2 pretraining of the encoder; `skysift finetune`: a head on a labelled column.

    skysift train --survey data/demo --out runs/demo --epochs 8
    skysift train --survey data/demo --out runs/demo --epochs 8 --resume     # continue after a crash
    torchrun --nproc_per_node=2 -m skysift.cli train --device cpu --survey data/demo --out runs/ddp  # gloo
    torchrun --nproc_per_node=4 -m skysift.cli train --survey data/bench --out runs/bench --backbone resnet50 \
        --batch-size 256 --queue-size 65536 --momentum 0.996
    skysift train --config runs/demo.toml --set augment.scale_min=0.8   # any TrainSettings field
    skysift train --print-settings                                      # the resolved settings, nothing run
    skysift finetune --survey data/demo --encoder runs/demo/encoder --label-column class --out runs/ft_class
    skysift finetune --survey data/demo --encoder runs/demo/encoder --label-column z --task regression \
        --regression-metric sigma_mad --label-fraction 0.1 --out runs/ft_z
    skysift training-plots runs/demo/metrics.jsonl --out docs/img --queue-size 1024   # loss + kNN PNGs
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

console = Console()


def train(
    survey: Annotated[Path | None, typer.Option(help="folder of native shards")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder: checkpoint, metrics, encoder/")] = None,
    backbone: Annotated[str | None, typer.Option(help="timm model name")] = None,
    backbone_kwargs: Annotated[str | None, typer.Option(
        help="JSON kwargs for the timm model (default: the backbone's own, encoder.model.BACKBONE_KWARGS)")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="per process; default: fits the survey (2^k <= N/8 per process, 2 to 128)")] = None,
    proj_dim: Annotated[int | None, typer.Option(help="projection (loss) dimension")] = None,
    proj_hidden: Annotated[int | None, typer.Option(help="projection head hidden width")] = None,
    readout: Annotated[Literal["plain", "dihedral8", "aligned4"] | None, typer.Option(
        help="search vector: the network once; its mean over the 8 right-angle rotations/flips (8x the "
             "encoding cost); or over 4 views of the stamp turned to its major axis (4x; docs/training.md)")] = None,
    smooth_px: Annotated[float | None, typer.Option(
        help="Gaussian smoothing of the cropped pixels, sigma in px, in training and search (0: off)")] = None,
    queue_size: Annotated[int | None, typer.Option(
        help="MoCo queue K, a multiple of the global batch, at most N minus one global batch; "
             "default: fits the survey (<= min(4096, N/4))")] = None,
    momentum: Annotated[float | None, typer.Option()] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    lr_per_256: Annotated[float | None, typer.Option(help="SGD learning rate per 256 images")] = None,
    crop_size: Annotated[int | None, typer.Option(help="augmented crop = encoder input size (px)")] = None,
    augment_settings: Annotated[str | None, typer.Option(
        help='JSON of augmentation fields (training.augment.AugmentSettings), e.g. '
             '\'{"scale_min": 0.8, "scale_max": 1.25, "band_gain_sigma": 0.1, "gain_sigma": 0.3, '
             '"noise_floor": 0.3}\' (or --set augment.scale_min=0.8 ...); --crop-size wins for crop_size_px')] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    precision: Annotated[Literal["auto", "fp32", "bf16"] | None, typer.Option(help="auto: bf16 on CUDA")] = None,
    compile_model: Annotated[bool | None, typer.Option("--compile/--no-compile")] = None,
    device: Annotated[Literal["auto", "cpu", "cuda"] | None, typer.Option(help="auto: cuda when available")] = None,
    workers: Annotated[int | None, typer.Option(
        help="processes reading HDF5 when the survey is not held in memory")] = None,
    cache_gb: Annotated[float | None, typer.Option(
        help="hold the survey's pixels in memory when they take at most this many GB (0: stream)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="steps between checkpoints")] = None,
    log_every: Annotated[int | None, typer.Option(help="steps between metrics records")] = None,
    resume: Annotated[bool | None, typer.Option(
        "--resume/--no-resume", help="continue from out/checkpoint.pt")] = None,
    monitor_size: Annotated[int | None, typer.Option()] = None,
    init_encoder: Annotated[Path | None, typer.Option(
        help="encoder folder whose weights both MoCo encoders start from (same architecture and bands)")] = None,
    *,
    settings: Callable[..., Any],
) -> None:
    """Train the encoder with MoCo v2 and export model.safetensors + model.json to OUT/encoder.

    Every TrainSettings field (training/settings.py) can also come from --set, --config or a
    SKYSIFT_TRAIN_* variable (SKYSIFT_TRAIN_AUGMENT__SCALE_MIN for a nested one); options left out
    take its defaults."""
    import os

    from .loop import train as run  # here, not at the top: `skysift --help` need not load torch
    from .settings import TrainSettings

    given = {
        "survey": survey, "out_dir": out, "backbone": backbone, "epochs": epochs, "batch_size": batch_size,
        "queue_size": queue_size, "proj_dim": proj_dim, "proj_hidden": proj_hidden, "log_every": log_every,
        "readout": readout, "smooth_px": smooth_px,
        "momentum": momentum, "temperature": temperature, "lr_per_256": lr_per_256, "max_steps": max_steps,
        "augment": {**_json_object("--augment-settings", augment_settings), "crop_size_px": crop_size},
        "precision": precision, "compile": compile_model, "device": device, "workers": workers,
        "cache_gb": cache_gb, "seed": seed, "checkpoint_every": checkpoint_every, "resume": resume,
        "monitor_size": monitor_size, "init_encoder": init_encoder,
        "backbone_kwargs": None if backbone_kwargs is None else _json_object("--backbone-kwargs", backbone_kwargs),
        "produced_by": "skysift " + shlex.join(sys.argv[1:]),  # this command, even with a saved --config
    }
    s: TrainSettings = settings(TrainSettings, given)

    def show(rec: dict) -> None:
        if "loss" in rec:
            console.print(f"step {rec['step']:>6}  epoch {rec['epoch']:>3}  loss {rec['loss']:.4f}  "
                          f"lr {rec['lr']:.4f}  {rec['images_per_s']:.0f} img/s")
        else:
            console.print(f"epoch {rec['epoch']:>3}  kNN same-class precision@10 {rec['knn_precision_at_10']:.3f}")

    # torchrun sets RANK / WORLD_SIZE / LOCAL_RANK: the entry point reads them, the library does not.
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    enc = run(s, on_step=show, launched=launched, local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    console.print(f"encoder written to {enc}")


def finetune(
    survey: Annotated[Path | None, typer.Option(help="folder of native shards whose catalogue holds the labels")]
    = None,
    encoder: Annotated[Path | None, typer.Option(help="encoder directory to start from (and whose architecture "
                                                       "--from-scratch copies)")] = None,
    label_column: Annotated[str | None, typer.Option(help="catalogue column to learn, e.g. class or z")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder: model.safetensors + model.json")] = None,
    task: Annotated[Literal["classification", "regression"] | None, typer.Option()] = None,
    from_scratch: Annotated[bool | None, typer.Option(
        "--from-scratch/--from-encoder", help="random weights, the encoder's architecture")] = None,
    regression_metric: Annotated[Literal["rmse", "sigma_mad"] | None, typer.Option(
        help="sigma_mad: the column is a redshift")] = None,
    head_hidden: Annotated[int | None, typer.Option(help="0: linear head; N: one hidden layer of N")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    min_steps: Annotated[int | None, typer.Option(help="lengthen epochs to make at least this many steps")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    freeze_epochs: Annotated[int | None, typer.Option(help="head-only epochs before the backbone trains")] = None,
    lr: Annotated[float | None, typer.Option(help="head learning rate (AdamW)")] = None,
    backbone_lr_scale: Annotated[float | None, typer.Option(help="backbone lr = lr x this")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    patience: Annotated[int | None, typer.Option(help="epochs without improvement before stopping")] = None,
    label_fraction: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="this fraction of the labels")] = None,
    val_fraction: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="held out for early stopping")] = None,
    test_fraction: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="held out for the metrics")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="rotations and flips")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[Literal["auto", "cpu", "cuda"] | None, typer.Option(help="auto: cuda when available")] = None,
    *,
    settings: Callable[..., Any],
) -> None:
    """Fine-tune the encoder's backbone plus a small head on a labelled catalogue column.

    --survey, --encoder, --label-column and --out are required (here, in --config or --set, or as
    SKYSIFT_FINETUNE_* variables); every other FinetuneSettings field has a default."""
    from .finetune_run import finetune as run  # here, not at the top: `skysift --help` need not load torch
    from .finetune_settings import FinetuneSettings

    given = {"survey": survey, "encoder": encoder, "label_column": label_column, "out_dir": out,
             "task": task, "from_scratch": from_scratch, "regression_metric": regression_metric,
             "head_hidden": head_hidden, "epochs": epochs, "min_steps": min_steps, "max_steps": max_steps,
             "freeze_epochs": freeze_epochs, "lr": lr, "backbone_lr_scale": backbone_lr_scale,
             "batch_size": batch_size, "patience": patience,
             "label_fraction": label_fraction, "val_fraction": val_fraction, "test_fraction": test_fraction,
             "augment": augment, "seed": seed, "device": device,
             "produced_by": "skysift " + shlex.join(sys.argv[1:])}  # this command, even with a saved --config
    s = settings(FinetuneSettings, given)
    run(s, log=console.print)


def _json_object(flag: str, text: str | None) -> dict:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} is not JSON ({e.msg} at character {e.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object of field: value, got {text!r}")
    return value


def training_plots(
    metrics: Annotated[Path, typer.Argument(help="metrics.jsonl of a run")],
    out: Annotated[Path, typer.Option(help="folder for training_loss.png and training_knn.png")] = Path("docs/img"),
    queue_size: Annotated[int | None, typer.Option(help="K of the run: draws the log(1 + K) line")] = None,
    title_prefix: Annotated[str, typer.Option(help='e.g. "demo, 6,000 objects: "')] = "",
) -> None:
    """Plot a training run's loss and kNN-monitor curves (training/plots.py; needs matplotlib)."""
    from .plots import plot

    for path in plot(metrics, out, title_prefix, queue_size):
        print(path)  # noqa: T201 - entry point


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("finetune")(finetune)
    app.command("training-plots")(training_plots)
