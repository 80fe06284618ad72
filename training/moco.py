"""MoCo v2 (He et al. 2020; Chen et al. 2020), as used on galaxies by Stein et al. 2021.

Paper symbols -> settings: K = queue_size, m = momentum, T = temperature.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from encoder.model import Encoder

from . import dist
from .loss import info_nce


class MoCo(nn.Module):
    def __init__(self, encoder: Encoder, queue_size: int, momentum: float, temperature: float) -> None:
        super().__init__()
        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.momentum, self.temperature = momentum, temperature
        dim = encoder.projector[-1].out_features
        self.register_buffer("queue", nn.functional.normalize(torch.randn(dim, queue_size), dim=0))  # (dim, K)
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update(self) -> None:
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys = dist.concat_all_gather(keys)  # (world*N, dim): the queue is filled from all ranks
        k_size, ptr = self.queue.shape[1], int(self.queue_ptr)
        n = keys.shape[0]
        idx = (torch.arange(n, device=keys.device) + ptr) % k_size
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + n) % k_size

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """im_q, im_k: two augmented views (N, C, S, S). Returns (loss, logits (N, 1+K))."""
        q = self.encoder_q.project(im_q)  # (N, dim)
        with torch.no_grad():
            self._momentum_update()
            k = dist.shuffled_key_forward(self.encoder_k.project, im_k, generator)  # (N, dim)
        loss, logits = info_nce(q, k.float(), self.queue.clone().detach(), self.temperature)
        self._enqueue(k)
        return loss, logits
