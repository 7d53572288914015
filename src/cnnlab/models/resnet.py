"""ResNet-18/34/50/101/152 (He et al. 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385).

Module names match `torchvision.models.resnet` (conv1, bn1, layer1..4, fc; blocks with downsample.0/.1), so
torchvision checkpoints load with a plain `load_state_dict` and the outputs are bit-identical.

This is ResNet v1.5, as torchvision builds it: in a Bottleneck the stride-2 subsampling sits on the 3x3 conv rather
than on the first 1x1 conv as in the paper. A 1x1 conv with stride 2 discards three quarters of its input; putting
the stride on the 3x3 conv loses nothing and is about 0.5% more accurate on ImageNet, at the same parameter count.
Downsampling shortcuts are the paper's option B (1x1 projection only where the shape changes).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model

PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition (arXiv:1512.03385)"

# Blocks per stage (He et al. 2015, Table 1).
RESNET_CFGS: dict[str, tuple[str, list[int]]] = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the BatchNorm that follows has its own shift.
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus a shortcut: the block of ResNet-18/34 and of the CIFAR ResNets."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4): keeps the deep models' cost close to ResNet-34's (paper, section 4.1)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)  # v1.5: the stride is here, not on conv1
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(ZooModel):
    """ImageNet ResNet: 7x7 stem, max-pool, four stages (64/128/256/512 planes), global average pool, fc.

    Initialisation as torchvision: conv weights Kaiming normal (fan_out, ReLU gain; He et al. 2015b), BatchNorm
    weight 1 and bias 0, fc left at PyTorch's default. Global average pooling makes any input of at least 32x32 work.
    """

    classifier_name = "fc"

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Option B: project only where the shape changes; identity everywhere else.
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


def _resnet(name: str, num_classes: int, in_channels: int) -> ResNet:
    block, layers = RESNET_CFGS[name]
    return ResNet(BLOCKS[block], layers, num_classes=num_classes, in_channels=in_channels)


@register_model(paper=PAPER)
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    return _resnet("resnet18", num_classes, in_channels)


@register_model(paper=PAPER)
def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    return _resnet("resnet34", num_classes, in_channels)


@register_model(paper=PAPER)
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    return _resnet("resnet50", num_classes, in_channels)


@register_model(paper=PAPER)
def resnet101(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    return _resnet("resnet101", num_classes, in_channels)


@register_model(paper=PAPER)
def resnet152(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    return _resnet("resnet152", num_classes, in_channels)
