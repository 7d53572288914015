"""`face_embedder`: any zoo backbone's features -> an L2-normalised embedding (FaceNet / ArcFace style).

The head is the one ArcFace (Deng et al. 2019, "BN-Dropout-FC-BN", their option E) found best: batch norm on the
last feature map flattened (not averaged: on aligned faces where a feature is, eyes above mouth, says who it is),
dropout, a linear map to `embedding_dim`, batch norm again; the output is L2-normalised so that the cosine
similarity of two faces is their dot product. `pool="avg"` averages the map instead (FaceNet-style), which keeps
the head small and independent of the input size. The margin head (ArcFace's class weights) is not part of the
model: it lives with the task's loss and is dropped after training, so the exported model maps a face to its
embedding and nothing else.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.registry import register_model
from cnnlab.models.yolo import build_backbone, load_backbone_weights

POOLS = ("flatten", "avg")
FACE_PAPER = (
    "Schroff, Kalenichenko & Philbin 2015 (FaceNet: embeddings, triplet loss); "
    "Deng et al. 2019 (ArcFace: BN-dropout-FC-BN head, additive angular margin)"
)


class FaceEmbedder(nn.Module):
    """Backbone features -> pooled -> BN -> dropout -> FC -> BN -> L2-normalised `embedding_dim` vector."""

    def __init__(
        self,
        backbone: Any = "resnet18",
        in_channels: int = 3,
        image_size: int = 112,
        embedding_dim: int = 128,
        dropout: float = 0.2,
        pool: str = "flatten",
        backbone_weights: str | None = None,
        num_classes: int | None = None,  # the zoo's common keyword; an embedder has no classes
    ) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, in_channels, int(image_size))
        if backbone_weights:
            load_backbone_weights(self.backbone, backbone_weights)
        if pool not in POOLS:
            raise ConfigError(f"model_options.pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.pool = pool
        with torch.no_grad():
            was = self.backbone.training
            probe = self.backbone.eval()(torch.zeros(1, in_channels, int(image_size), int(image_size)))
            self.backbone.train(was)
        features = probe[0].numel() if pool == "flatten" else probe.shape[1]
        self.embedding_dim = int(embedding_dim)
        self.head = nn.Sequential(
            nn.BatchNorm1d(features),
            nn.Dropout(dropout),
            nn.Linear(features, self.embedding_dim, bias=False),
            nn.BatchNorm1d(self.embedding_dim),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = features.flatten(1) if self.pool == "flatten" else F.adaptive_avg_pool2d(features, 1).flatten(1)
        return F.normalize(self.head(pooled), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(paper=FACE_PAPER, default_input=(3, 112, 112), default_classes=0)
def face_embedder(num_classes: int | None = None, in_channels: int = 3, **options: Any) -> FaceEmbedder:
    return FaceEmbedder(in_channels=in_channels, **options)


EMBEDDERS = ("face_embedder",)
