"""InfoNCE as a pure function (He et al. 2020, eq. 1; Chen et al. 2020 for v2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k: (N, dim) L2-normalised queries and their positive keys; queue: (dim, K) negatives.

    Returns (loss, logits (N, 1+K)); the positive is column 0.
    """
    l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)  # (N, 1)
    l_neg = torch.einsum("nc,ck->nk", q, queue)  # (N, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1+K)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels), logits
