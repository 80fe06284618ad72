"""Distributed plumbing for MoCo; every function falls back to a single process.

Launch on many GPUs or nodes with torchrun (it sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT):
    torchrun --nproc_per_node=8 -m skysift.cli train --survey data/bench --out runs/r50
    torchrun --nproc_per_node=2 -m skysift.cli train --device cpu ...   # gloo on CPU (tests, CI)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def setup(device_kind: str, launched: bool = False, local_rank: int = 0) -> torch.device:
    """Join the process group when launched by torchrun; return this process's device.

    `launched` and `local_rank` come from torchrun's RANK / WORLD_SIZE / LOCAL_RANK, which the entry
    point (training/cli.py) reads: library code never reads the environment. NCCL on CUDA, gloo on
    CPU. The CUDA device is chosen before the group is created so that NCCL's communicator and every
    later `all_gather_object` use this process's GPU, not GPU 0.
    """
    device = torch.device(device_kind)
    if device_kind == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if launched and not is_dist():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return device


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) on each rank -> (world*N, ...) in rank order, no gradient (keys for the queue).

    Every rank must pass the same N (EpochBatchSampler gives each rank equal full batches).
    """
    if not is_dist():
        return x
    # Contiguous before empty_like: a channels_last input would otherwise give channels_last
    # receive buffers, which NCCL refuses ("Tensors must be contiguous").
    x = x.contiguous()
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x)
    return torch.cat(out, dim=0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's picklable `obj`, in rank order, on every rank ([obj] in one process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def shuffled_key_forward(encoder_k: torch.nn.Module, x: torch.Tensor, generator: torch.Generator,
                         local_groups: int = 2) -> torch.Tensor:
    """Key projections computed with BatchNorm statistics from a different set of samples than
    the queries see ("shuffling BN", He et al. 2020 §3.3), so the key encoder cannot cheat.

    Several processes: gather the batch, permute it globally (rank 0's permutation is broadcast,
    so all ranks agree whatever their generators hold), each rank encodes a slice, undo.
    One process: permute and encode in `local_groups` sub-batches (BN stats per sub-batch).
    x (N, C, S, S) -> (N, dim), row i the key of x[i].
    """
    n_local = x.shape[0]
    if is_dist():
        x_all = concat_all_gather(x)  # (world*N, C, S, S)
        perm = torch.randperm(x_all.shape[0], generator=generator, device="cpu").to(x.device)
        dist.broadcast(perm, src=0)
        mine = perm.view(world_size(), -1)[rank()]  # (N,) rows of x_all this rank encodes
        k_all = concat_all_gather(encoder_k(x_all[mine]))  # row j is the key of x_all[perm[j]]
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


def fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    """sha256 over the bytes of `tensors` in order: equal on all ranks iff they hold the same values."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
