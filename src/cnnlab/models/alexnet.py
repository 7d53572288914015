"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep Convolutional Neural Networks").

Two variants:

- `alexnet`: torchvision's layout (the one-GPU "One weird trick" variant, Krizhevsky 2014: 64/192/384/256/256 conv
  widths, no response normalisation, no grouped convolutions). Module names and indices match
  `torchvision.models.alexnet`, so its checkpoints load directly.
- `alexnet_paper`: the 2012 network as published: 96/256/384/384/256 conv widths, local response normalisation after
  conv1 and conv2, and conv2/conv4/conv5 split into two groups. The groups are how the paper spread the net over two
  GTX 580s (each kernel sees only the maps on its own GPU); they also halve those layers' weights.
  60,965,224 parameters at 1000 classes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model

PAPER = "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks"


class ConvSpec(NamedTuple):
    out_channels: int
    kernel: int
    stride: int
    padding: int
    groups: int = 1
    lrn: bool = False  # local response normalisation after the ReLU (paper, section 3.3)
    pool: bool = False  # overlapping 3x3 max-pool with stride 2 (paper, section 3.4)
    bias_one: bool = False  # paper's init: bias 1 "to give the ReLUs positive inputs" (section 5)


ALEXNET_CFGS: dict[str, list[ConvSpec]] = {
    "alexnet": [
        ConvSpec(64, 11, 4, 2, pool=True),
        ConvSpec(192, 5, 1, 2, pool=True),
        ConvSpec(384, 3, 1, 1),
        ConvSpec(256, 3, 1, 1),
        ConvSpec(256, 3, 1, 1, pool=True),
    ],
    "alexnet_paper": [
        ConvSpec(96, 11, 4, 2, lrn=True, pool=True),
        ConvSpec(256, 5, 1, 2, groups=2, lrn=True, pool=True, bias_one=True),
        ConvSpec(384, 3, 1, 1),  # conv3 connects to all of conv2's maps, across both GPUs
        ConvSpec(384, 3, 1, 1, groups=2, bias_one=True),
        ConvSpec(256, 3, 1, 1, groups=2, pool=True, bias_one=True),
    ],
}

# Section 3.3: b = a / (k + alpha * sum of a^2 over n adjacent maps)^beta with k=2, n=5, alpha=1e-4, beta=0.75.
# nn.LocalResponseNorm divides alpha by n, so the paper's alpha is passed as alpha * n.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0


def make_features(cfg: list[ConvSpec], in_channels: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for spec in cfg:
        conv = nn.Conv2d(in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding, groups=spec.groups)
        layers += [conv, nn.ReLU(inplace=True)]
        if spec.lrn:
            layers.append(nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K))
        if spec.pool:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        in_channels = spec.out_channels
    return nn.Sequential(*layers)


class AlexNet(ZooModel):
    """Five conv layers, a 6x6 adaptive average pool and a 4096-4096-classes head with dropout 0.5.

    The adaptive pool (torchvision's addition) is the identity at 224x224 and lets inputs down to 63x63 run.
    `paper_head` puts dropout on the outputs of the two hidden fc layers, as the paper does (section 4.2);
    torchvision puts it on their inputs instead.
    """

    classifier_name = "classifier.6"

    def __init__(
        self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5, paper_head: bool = False
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        width = 256 * 6 * 6
        if paper_head:
            layers = [nn.Linear(width, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
            layers += [nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout)]
        else:
            layers = [nn.Dropout(p=dropout), nn.Linear(width, 4096), nn.ReLU(inplace=True)]
            layers += [nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True)]
        self.classifier = nn.Sequential(*layers, nn.Linear(4096, num_classes))
        self.num_features = 4096

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def _init_as_paper(model: AlexNet, cfg: list[ConvSpec]) -> None:
    """Section 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden fc layers, else 0."""
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    bias_one = [spec.bias_one for spec in cfg] + [True, True, False]
    for module, one in zip(convs + linears, bias_one, strict=True):
        nn.init.normal_(module.weight, 0.0, 0.01)
        nn.init.constant_(module.bias, 1.0 if one else 0.0)


@register_model(paper="Krizhevsky 2014, One weird trick for parallelizing CNNs (torchvision's AlexNet)")
def alexnet(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet, initialised as torchvision does (PyTorch's default layer init)."""
    return AlexNet(make_features(ALEXNET_CFGS["alexnet"], in_channels), num_classes=num_classes, dropout=dropout)


@register_model(paper=PAPER)
def alexnet_paper(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> AlexNet:
    """The 2012 AlexNet with LRN and grouped convs, initialised as the paper does (section 5)."""
    cfg = ALEXNET_CFGS["alexnet_paper"]
    model = AlexNet(make_features(cfg, in_channels), num_classes=num_classes, dropout=dropout, paper_head=True)
    _init_as_paper(model, cfg)
    return model
