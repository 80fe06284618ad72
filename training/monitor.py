"""kNN monitor: how well the current representation groups a labelled validation subset."""

from __future__ import annotations

import numpy as np
import torch

from encoder.card import ModelCard
from encoder.embed import embed_array
from encoder.model import Encoder


def same_class_precision(embeddings: torch.Tensor, labels: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each object's k nearest neighbours (cosine, self excluded) sharing its label."""
    sims = embeddings @ embeddings.T
    sims.fill_diagonal_(-float("inf"))
    nn_idx = sims.topk(min(k, len(labels) - 1), dim=1).indices.cpu().numpy()
    return float((labels[nn_idx] == labels[:, None]).mean())


def knn_monitor(encoder: Encoder, card: ModelCard, images: np.ndarray, labels: np.ndarray,
                device: torch.device, k: int = 10) -> float:
    was_training = encoder.training
    encoder.eval()
    emb = torch.from_numpy(embed_array(encoder, card, images, device=device))
    encoder.train(was_training)
    return same_class_precision(emb, labels, k)
