"""The one interface every zoo model has (as in timm), so Grad-CAM, embeddings and detection need no per-model code."""

from __future__ import annotations

import torch
from torch import nn


class ZooModel(nn.Module):
    """A classifier split into a feature extractor and a head.

    Subclasses set `self.features` (conv stages, returns a feature map) and implement
    `forward_head`. `classifier_name` names the final linear layer attribute path.
    """

    classifier_name: str = "fc"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        module: nn.Module = self
        for part in self.classifier_name.split("."):
            module = getattr(module, part)
        return module

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer (fine-tuning on a new label set)."""
        old = self.get_classifier()
        if not isinstance(old, nn.Linear):
            raise TypeError(f"{type(self).__name__} has no linear classifier to reset")
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        *parents, last = self.classifier_name.split(".")
        owner: nn.Module = self
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, last, new)
