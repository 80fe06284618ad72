"""Encode a whole survey into embeddings, in shards that survive being killed.

    skysift encode --survey data/demo --encoder runs/demo/encoder --job artifacts/building/demo
    torchrun --nproc_per_node=8 -m skysift.cli encode ...   # shards split across ranks

Each shard of rows is written as `emb-00000.npy` (float16, L2-normalised) with a `.done` marker
written after it; a re-run skips shards whose marker exists, so a crash loses at most the shard
in flight. Shard k belongs to rank k mod world_size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from encoder.embed import embed_array
from encoder.weights import load_encoder
from survey.native import NativeSurvey

from .errors import ArtifactMismatch


def shard_paths(job: Path, k: int) -> tuple[Path, Path]:
    return job / f"emb-{k:05d}.npy", job / f"emb-{k:05d}.done"


def n_shards(n: int, shard_size: int) -> int:
    return (n + shard_size - 1) // shard_size


def encode_survey(survey_dir: Path, encoder_dir: Path, job: Path, *, shard_size: int = 4096, batch_size: int = 256,
                  device: str = "cpu", rank: int = 0, world: int = 1,
                  on_rows: Callable[[int], None] | None = None) -> list[int]:
    """Encode the shards of this rank that are not done yet; returns the shard numbers encoded."""
    job.mkdir(parents=True, exist_ok=True)
    survey = NativeSurvey(survey_dir)
    encoder, card = load_encoder(encoder_dir, device)
    card.check_bands(survey.bands, len(survey.bands))
    if abs(survey.pixel_scale_arcsec - card.preprocess.pixel_scale_arcsec) > 1e-3 * card.preprocess.pixel_scale_arcsec:
        raise ArtifactMismatch(f"survey pixel scale {survey.pixel_scale_arcsec}\"/px differs from the encoder's "
                               f"{card.preprocess.pixel_scale_arcsec}\"/px")
    _write_plan(job, len(survey), shard_size, card.weights_sha256)
    done = []
    for k in range(rank, n_shards(len(survey), shard_size), world):
        npy, marker = shard_paths(job, k)
        start, stop = k * shard_size, min((k + 1) * shard_size, len(survey))
        if marker.exists():
            if on_rows:
                on_rows(stop - start)
            continue
        parts = []
        for b0 in range(start, stop, batch_size):
            rows = np.arange(b0, min(b0 + batch_size, stop))
            parts.append(embed_array(encoder, card, survey.images(rows), device=device, batch_size=batch_size))
            if on_rows:
                on_rows(len(rows))
        emb = np.concatenate(parts).astype(np.float16)
        tmp = npy.with_name(npy.name + ".partial")
        with open(tmp, "wb") as f:
            np.save(f, emb)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, npy)
        marker.write_text(json.dumps({"rows": [start, stop]}))
        done.append(k)
    survey.close()
    return done


def _write_plan(job: Path, n: int, shard_size: int, weights_sha256: str) -> None:
    """The plan pins what a resumed run must match: same survey size, shards, encoder."""
    plan = {"n_objects": n, "shard_size": shard_size, "weights_sha256": weights_sha256}
    path = job / "plan.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != plan:
            raise ArtifactMismatch(f"{job} was started with {old}, now asked for {plan}: use a new job folder")
        return
    tmp = path.with_name("plan.json.partial")
    tmp.write_text(json.dumps(plan))
    os.replace(tmp, path)


def gather_embeddings(job: Path) -> np.ndarray:
    """(N, D) float16 from all shards, checking every shard is present and complete."""
    plan = json.loads((job / "plan.json").read_text())
    k_total = n_shards(plan["n_objects"], plan["shard_size"])
    missing = [k for k in range(k_total) if not shard_paths(job, k)[1].exists()]
    if missing:
        raise ArtifactMismatch(f"{job}: {len(missing)} of {k_total} shards not encoded yet (e.g. {missing[:5]})")
    emb = np.concatenate([np.load(shard_paths(job, k)[0]) for k in range(k_total)])
    if len(emb) != plan["n_objects"]:
        raise ArtifactMismatch(f"{job}: {len(emb)} embeddings for {plan['n_objects']} objects")
    return emb


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
