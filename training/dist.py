"""Distributed plumbing for MoCo; every function falls back to a single process.

Launch on many GPUs or nodes with torchrun (it sets RANK, WORLD_SIZE, LOCAL_RANK):
    torchrun --nproc_per_node=8 -m skysift.cli train --survey data/bench --out runs/r50
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def setup(device_kind: str) -> torch.device:
    """Join the process group when launched by torchrun; return this process's device."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not is_dist():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_kind == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device_kind)


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) on each rank -> (world*N, ...) in rank order, no gradient (keys for the queue)."""
    if not is_dist():
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


@torch.no_grad()
def shuffled_key_forward(encoder_k: torch.nn.Module, x: torch.Tensor, generator: torch.Generator,
                         local_groups: int = 2) -> torch.Tensor:
    """Key projections computed with BatchNorm statistics from a different set of samples than
    the queries see ("shuffling BN", He et al. 2020 §3.3), so the key encoder cannot cheat.

    Several processes: gather the batch, permute it globally, each rank encodes a slice, undo.
    One process: permute and encode in `local_groups` sub-batches (BN stats per sub-batch).
    """
    n_local = x.shape[0]
    if is_dist():
        x_all = concat_all_gather(x)
        perm = torch.randperm(x_all.shape[0], generator=generator, device="cpu").to(x.device)
        dist.broadcast(perm, src=0)
        mine = perm.view(world_size(), -1)[rank()]
        k = encoder_k(x_all[mine])
        k_all = concat_all_gather(k)
        unshuffled = torch.empty_like(k_all)
        unshuffled[perm] = k_all
        return unshuffled[rank() * n_local : (rank() + 1) * n_local]
    perm = torch.randperm(n_local, generator=generator, device="cpu").to(x.device)
    parts = [encoder_k(chunk) for chunk in x[perm].chunk(max(1, min(local_groups, n_local)))]
    k = torch.cat(parts)
    out = torch.empty_like(k)
    out[perm] = k
    return out


def all_reduce_mean(value: float, device: torch.device) -> float:
    if not is_dist():
        return value
    t = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world_size()
