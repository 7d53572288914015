"""VGG-11/13/16/19 (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks for Large-Scale Image Recognition").

Configurations A, B, D and E of the paper's Table 1. Module names and indices match `torchvision.models.vgg`
(features / avgpool / classifier), so torchvision checkpoints load directly. The `_bn` variants add BatchNorm after
every conv (not in the paper, which predates it, but they are the ones that train from scratch without the paper's
staged initialisation from the shallower net A).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model

PAPER = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition"

# Table 1: numbers are 3x3 conv widths (stride 1, padding 1), "M" is a 2x2 max-pool with stride 2.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(cfg: list[int | str], batch_norm: bool = False, in_channels: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for value in cfg:
        if value == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out_channels = int(value)
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


class VGG(ZooModel):
    """Conv stacks, a 7x7 adaptive average pool, and the paper's 4096-4096-classes head with dropout 0.5.

    The adaptive pool (torchvision's addition) lets inputs from 32x32 up run through the same fc layers; at 224x224
    it is the identity. Initialisation as torchvision: conv weights Kaiming normal (fan_out, ReLU gain), biases 0,
    BatchNorm 1/0, linear weights N(0, 0.01). The paper drew every weight from N(0, 0.01) and trained the deeper nets
    from net A's weights, noting afterwards that Glorot-style scaled initialisation made that unnecessary.
    """

    classifier_name = "classifier.6"

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.num_features = 4096

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.constant_(module.bias, 0)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


def _vgg(name: str, batch_norm: bool, num_classes: int, in_channels: int, dropout: float) -> VGG:
    features = make_layers(VGG_CFGS[name], batch_norm=batch_norm, in_channels=in_channels)
    return VGG(features, num_classes=num_classes, dropout=dropout)


@register_model(paper=PAPER)
def vgg11(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, batch_norm: bool = False) -> VGG:
    return _vgg("vgg11", batch_norm, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg13(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, batch_norm: bool = False) -> VGG:
    return _vgg("vgg13", batch_norm, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg16(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, batch_norm: bool = False) -> VGG:
    return _vgg("vgg16", batch_norm, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg19(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5, batch_norm: bool = False) -> VGG:
    return _vgg("vgg19", batch_norm, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg11_bn(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> VGG:
    return _vgg("vgg11", True, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg13_bn(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> VGG:
    return _vgg("vgg13", True, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg16_bn(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> VGG:
    return _vgg("vgg16", True, num_classes, in_channels, dropout)


@register_model(paper=PAPER)
def vgg19_bn(num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> VGG:
    return _vgg("vgg19", True, num_classes, in_channels, dropout)
