"""`skysift train`: MoCo v2 pretraining of the encoder.

    skysift train --survey data/demo --out runs/demo --epochs 8
    skysift train --survey data/demo --out runs/demo --epochs 8 --resume     # continue after a crash
    torchrun --nproc_per_node=2 -m skysift.cli train --device cpu --survey data/demo --out runs/ddp  # gloo
    torchrun --nproc_per_node=4 -m skysift.cli train --survey data/bench --out runs/bench --backbone resnet50 \
        --backbone-kwargs '{}' --batch-size 256 --queue-size 65536 --momentum 0.996
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def train(
    survey: Annotated[Path, typer.Option(help="folder of native shards")] = Path("data/sim"),
    out: Annotated[Path, typer.Option(help="run folder: checkpoint, metrics, encoder/")] = Path("runs/train"),
    backbone: Annotated[str, typer.Option(help="timm model name")] = "resnet18",
    backbone_kwargs: Annotated[str | None, typer.Option(help="JSON kwargs for the timm model")] = None,
    epochs: int = 8,
    batch_size: Annotated[int | None, typer.Option(
        help="per process; default: fits the survey (2^k <= N/8 per process, 2 to 128)")] = None,
    proj_dim: Annotated[int, typer.Option(help="projection (loss) dimension")] = 128,
    proj_hidden: Annotated[int, typer.Option(help="projection head hidden width")] = 512,
    queue_size: Annotated[int | None, typer.Option(
        help="MoCo queue K, a multiple of the global batch, at most N minus one global batch; "
             "default: fits the survey (<= min(4096, N/4))")] = None,
    momentum: float = 0.99,
    temperature: float = 0.2,
    lr_per_256: Annotated[float, typer.Option(help="SGD learning rate per 256 images")] = 0.03,
    crop_size: Annotated[int, typer.Option(help="augmented crop = encoder input size (px)")] = 32,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps")] = None,
    precision: str = "auto",
    compile_model: Annotated[bool, typer.Option("--compile/--no-compile")] = False,
    device: str = "auto",
    workers: int = 2,
    seed: int = 0,
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 200,
    log_every: Annotated[int, typer.Option(help="steps between metrics records")] = 10,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue from out/checkpoint.pt")] = False,
    monitor_size: int = 2000,
) -> None:
    """Train the encoder with MoCo v2 and export model.safetensors + model.json to OUT/encoder."""
    from .augment import AugmentSettings  # here, not at the top: `skysift --help` need not load torch
    from .loop import train as run
    from .settings import TrainSettings

    extra = {"backbone_kwargs": json.loads(backbone_kwargs)} if backbone_kwargs is not None else {}
    s = TrainSettings(
        survey=survey, out_dir=out, backbone=backbone, epochs=epochs, batch_size=batch_size, queue_size=queue_size,
        proj_dim=proj_dim, proj_hidden=proj_hidden, log_every=log_every,
        momentum=momentum, temperature=temperature, lr_per_256=lr_per_256, max_steps=max_steps,
        augment=AugmentSettings(crop_size_px=crop_size), precision=precision, compile=compile_model, device=device,
        workers=workers, seed=seed, checkpoint_every=checkpoint_every, resume=resume, monitor_size=monitor_size,
        produced_by="skysift " + shlex.join(sys.argv[1:]), **extra,
    )

    def show(rec: dict) -> None:
        if "loss" in rec:
            console.print(f"step {rec['step']:>6}  epoch {rec['epoch']:>3}  loss {rec['loss']:.4f}  "
                          f"lr {rec['lr']:.4f}  {rec['images_per_s']:.0f} img/s")
        else:
            console.print(f"epoch {rec['epoch']:>3}  kNN same-class precision@10 {rec['knn_precision_at_10']:.3f}")

    enc = run(s, on_step=show)
    console.print(f"encoder written to {enc}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
