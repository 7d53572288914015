"""CIFAR-10 ResNets (He et al. 2015, "Deep Residual Learning for Image Recognition", section 4.2).

The paper's CIFAR study uses 6n+2 layers: a 3x3 conv with 16 filters, three stages of n BasicBlocks on 32x32, 16x16
and 8x8 maps with 16, 32 and 64 filters, global average pooling and a 10-way fc. Its shortcuts are all identities
(option A): where the width doubles, the input is subsampled with stride 2 and the new channels are zeros, so a deeper
model gains depth without any extra shortcut parameters, which is the point of the comparison in Table 6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model
from cnnlab.models.resnet import BasicBlock

PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition, section 4.2 (arXiv:1512.03385)"

# n BasicBlocks per stage; depth = 6n + 2 (section 4.2).
RESNET_CIFAR_CFGS: dict[str, int] = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
STAGE_WIDTHS = (16, 32, 64)


class ShortcutA(nn.Module):
    """Option A shortcut: identity subsampled by `stride`, the missing channels filled with zeros; no parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_planes - self.in_planes))

    def extra_repr(self) -> str:
        return f"{self.in_planes}->{self.out_planes}, stride={self.stride}"


class CifarResNet(ZooModel):
    """6n+2-layer ResNet for 32x32 inputs.

    Initialisation: conv weights Kaiming normal (He et al. 2015b, which section 4.2 cites; fan_out, ReLU gain as in
    torchvision), BatchNorm weight 1 and bias 0, fc at PyTorch's default. Global average pooling lets other sizes run.
    """

    classifier_name = "fc"

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.inplanes = STAGE_WIDTHS[0]
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(STAGE_WIDTHS[0], blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(STAGE_WIDTHS[1], blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(STAGE_WIDTHS[2], blocks_per_stage, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = STAGE_WIDTHS[2]
        self.fc = nn.Linear(self.num_features, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        shortcut = None
        if stride != 1 or self.inplanes != planes:
            shortcut = ShortcutA(self.inplanes, planes, stride)
        layers = [BasicBlock(self.inplanes, planes, stride, shortcut)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        return self.layer3(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


def _cifar_resnet(name: str, num_classes: int, in_channels: int) -> CifarResNet:
    return CifarResNet(RESNET_CIFAR_CFGS[name], num_classes=num_classes, in_channels=in_channels)


@register_model(paper=PAPER, default_input=(3, 32, 32), default_classes=10)
def resnet20(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return _cifar_resnet("resnet20", num_classes, in_channels)


@register_model(paper=PAPER, default_input=(3, 32, 32), default_classes=10)
def resnet32(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return _cifar_resnet("resnet32", num_classes, in_channels)


@register_model(paper=PAPER, default_input=(3, 32, 32), default_classes=10)
def resnet44(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return _cifar_resnet("resnet44", num_classes, in_channels)


@register_model(paper=PAPER, default_input=(3, 32, 32), default_classes=10)
def resnet56(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return _cifar_resnet("resnet56", num_classes, in_channels)


@register_model(paper=PAPER, default_input=(3, 32, 32), default_classes=10)
def resnet110(num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return _cifar_resnet("resnet110", num_classes, in_channels)
