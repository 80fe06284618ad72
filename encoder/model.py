"""Encoder = timm backbone (in_chans = number of bands) + MLP projection head (MoCo v2).

`embed` is the representation used for search: the pooled backbone output, L2-normalised (Stein
et al. 2021 search on the backbone, not on the projection). With the `dihedral8` readout it is the
mean of that over the cutout's 4 right-angle rotations and their mirror images, so an object and
its rotated or flipped copy get the same vector: a galaxy has no preferred orientation on the sky,
and a trained network is only approximately invariant; `aligned4` first turns the crop to its
light's major axis and averages 4 views, close to invariant at any angle (docs/training.md,
"Readout and smoothing"). `project`
feeds the contrastive loss.
Small cutouts (32-64 px) lose everything to a stride-4 stem, so `small_input` drops the stem's
max-pool (the stem conv keeps stride 2): layer1 then sees 16x16 maps for a 32 px input.
"""

from __future__ import annotations

import copy
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .card import READOUTS, Readout

# A backbone's own constructor kwargs when none are given (TrainSettings.backbone_kwargs = None): the
# half-width ResNet-18, 2.8M parameters, ~4x the CPU throughput of the full width on 32 px cutouts.
# A name not listed gets timm's defaults ({}), so `--backbone resnet50` is a full ResNet-50.
BACKBONE_KWARGS: dict[str, dict[str, Any]] = {"resnet18": {"channels": [32, 64, 128, 256], "stem_width": 32}}


def default_backbone_kwargs(name: str) -> dict[str, Any]:
    """`name`'s default constructor kwargs (a fresh copy), {} for a backbone without an entry."""
    return copy.deepcopy(BACKBONE_KWARGS.get(name, {}))


def create_backbone(name: str, in_chans: int, small_input: bool = True, **kwargs: Any) -> nn.Module:
    """A timm model without classifier; kwargs go to its constructor (e.g. ResNet `channels`)."""
    backbone = timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0, **kwargs)
    if small_input and hasattr(backbone, "maxpool"):
        backbone.maxpool = nn.Identity()
    return backbone


def feature_dim(backbone: nn.Module) -> int:
    """Width of the backbone's pooled output (timm models set `num_features` to an int)."""
    return int(backbone.num_features)  # type: ignore[arg-type]


class Encoder(nn.Module):
    def __init__(self, backbone: str, in_chans: int, proj_dim: int = 128, proj_hidden: int | None = None,
                 small_input: bool = True, backbone_kwargs: dict[str, Any] | None = None,
                 readout: Readout = "plain") -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout {readout!r} is not one of {', '.join(READOUTS)}")
        self.readout = readout
        self.backbone_name = backbone
        self.backbone = create_backbone(backbone, in_chans, small_input, **(backbone_kwargs or {}))
        feat = feature_dim(self.backbone)
        hidden = proj_hidden or feat
        self.embedding_dim = feat
        self.projector = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, D) pooled backbone output, not normalised."""
        return self.backbone(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, D) L2-normalised search representation (see `readout`)."""
        if self.readout == "plain":
            return F.normalize(self.features(x).float(), dim=1)
        # one pass per view, not one of 8N: on 2 CPU cores the 8x batch ran 1.4x slower per image
        views = dihedral_views(x) if self.readout == "dihedral8" else aligned_views(x)
        total = torch.stack([F.normalize(self.features(v).float(), dim=1) for v in views]).sum(0)
        return F.normalize(total, dim=1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, S, S) -> (N, proj_dim) L2-normalised contrastive projection."""
        return F.normalize(self.projector(self.features(x)).float(), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 images of (N, C, S, S) under the square's symmetries: rotations by 0, 90, 180 and 270
    degrees, and each of those mirrored left-right."""
    turns = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


def aligned_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 4 images of (N, C, S, S) that keep an x-aligned major axis on x: itself, the half-turn,
    and the two mirror images (the "aligned4" readout; encoder.preprocess.align_major_axis turns
    the crop first)."""
    return [x, torch.rot90(x, 2, dims=(-2, -1)), x.flip(-1), x.flip(-2)]
