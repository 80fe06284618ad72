"""Batch embedding of pixel arrays with a loaded encoder (used by the indexer and the service)."""

from __future__ import annotations

import numpy as np
import torch

from .card import ModelCard
from .model import Encoder
from .preprocess import preprocess


@torch.inference_mode()
def embed_array(encoder: Encoder, card: ModelCard, images: np.ndarray, device: str | torch.device = "cpu",
                batch_size: int = 256) -> np.ndarray:
    """Linear-flux images (N, C, H, W) -> (N, D) float32 L2-normalised embeddings."""
    out = np.empty((len(images), card.embedding_dim), dtype=np.float32)
    device = torch.device(device)
    use_bf16 = device.type == "cuda"
    for start in range(0, len(images), batch_size):
        x = preprocess(images[start : start + batch_size], card.preprocess).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            z = encoder.embed(x)
        out[start : start + len(x)] = z.float().cpu().numpy()
    return out
