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
    """Query encoder (trained by SGD), key encoder (its moving average) and a queue of K keys.

    Everything that defines the state lives in the module: both encoders, `queue` (dim, K) and
    `queue_ptr`, so `state_dict()` is all a checkpoint needs of the model.
    """

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
        """theta_k <- m * theta_k + (1 - m) * theta_q (He et al. 2020, eq. 2), parameters only."""
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest world*N keys by this step's keys from every rank (FIFO, wraps around)."""
        keys = dist.concat_all_gather(keys)  # (world*N, dim)
        n, k_size = keys.shape[0], self.queue.shape[1]
        # Pointer arithmetic stays on the device: no .item() sync per step, no torch.compile graph break.
        idx = (torch.arange(n, device=keys.device) + self.queue_ptr) % k_size  # (world*N,)
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % k_size)

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """im_q, im_k: two augmented views (N, C, S, S). Returns (loss, logits (N, 1+K))."""
        q = self.encoder_q.project(im_q)  # (N, dim)
        with torch.no_grad():
            self._momentum_update()
            k = dist.shuffled_key_forward(self.encoder_k.project, im_k, generator)  # (N, dim)
        loss, logits = info_nce(q, k.float(), self.queue.clone().detach(), self.temperature)
        self._enqueue(k)
        return loss, logits
