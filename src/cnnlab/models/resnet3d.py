"""3-D CNNs for volumes (N, C, D, H, W): ResNet-10/18/34 with Conv3d, and a small 3-D net that trains on a CPU.

The ResNets are the 2-D BasicBlock ResNets of He et al. 2015 with every kernel given a depth axis, which is how
MedMNIST v2 (Yang et al. 2023) builds its 3-D baselines: its ResNet-18 (kuangliu's CIFAR layout: a 3x3 stem with
stride 1, no max-pool, option-B shortcuts) goes through ACSConv's `Conv3dConverter`, which turns each Conv2d(k) into
a Conv3d(k, k, k), each BatchNorm2d into a BatchNorm3d and the 2-D pooling into 3-D pooling. On 28x28x28 volumes the
stride-1 stem keeps the four stages at 28, 14, 7 and 4 voxels a side; the ImageNet stem (7x7x7 with stride 2, then a
3x3x3 max-pool; as in Hara et al. 2018's 3D-ResNets) would leave 7 voxels after the stem and 1 in the last stage, so
it is an option (`stem="imagenet"`) for larger volumes. Module names are torchvision's (conv1, bn1, layer1..4 with
downsample.0/.1, fc), so the state dict has the same keys as the 2-D `resnet18` and each conv weight the same shape
plus one kernel axis.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model
from cnnlab.models.resnet import BasicBlock

PAPER = (
    "He et al. 2015, Deep Residual Learning for Image Recognition, with Conv3d as in MedMNIST v2 "
    "(Yang et al. 2023) and Hara et al. 2018 (3D ResNets)"
)
SMALL_PAPER = "A small Conv3d-BN-ReLU-MaxPool3d net (cnnlab) for 28x28x28 volumes on a CPU"
VOLUME_INPUT = (1, 28, 28, 28)  # MedMNIST 3-D: one channel, 28^3 voxels

# BasicBlocks per stage (He et al. 2015, Table 1; ResNet-10 is Hara et al.'s one block per stage).
RESNET3D_CFGS: dict[str, list[int]] = {
    "resnet10_3d": [1, 1, 1, 1],
    "resnet18_3d": [2, 2, 2, 2],
    "resnet34_3d": [3, 4, 6, 3],
}
STEMS = ("small", "imagenet")


def conv3x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    # No bias: the BatchNorm that follows has its own shift.
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock3d(BasicBlock):
    """Two 3x3x3 convs plus a shortcut: ResNet-18/34's block with a depth axis (the 2-D block's forward)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        nn.Module.__init__(self)
        self.conv1 = conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride


class ResNet3d(ZooModel):
    """Volume ResNet: stem, four stages (64/128/256/512 planes, strides 1/2/2/2), global average pool, fc.

    Initialisation as the 2-D zoo ResNets: conv weights Kaiming normal (fan_out, ReLU gain), BatchNorm weight 1 and
    bias 0, fc at PyTorch's default.

    Args:
        layers: BasicBlocks per stage.
        num_classes: outputs of the fc layer.
        in_channels: channels of the volume (1 for CT/MRI).
        stem: "small" (3x3x3 conv, stride 1, no max-pool: for 28^3 volumes, MedMNIST's choice) or "imagenet"
            (7x7x7 conv with stride 2 and a 3x3x3/2 max-pool: for volumes of 64 voxels a side and more).
    """

    classifier_name = "fc"

    def __init__(self, layers: list[int], num_classes: int = 2, in_channels: int = 1, stem: str = "small") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ConfigError(f"model option 'stem' must be one of {', '.join(STEMS)}, got {stem!r}")
        self.inplanes = 64
        if stem == "small":
            self.conv1 = nn.Conv3d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv3d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.num_features = 512
        self.fc = nn.Linear(self.num_features, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            # Option B: project only where the shape changes; identity everywhere else.
            downsample = nn.Sequential(conv1x1x1(self.inplanes, planes, stride), nn.BatchNorm3d(planes))
        layers = [BasicBlock3d(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock3d(planes, planes) for _ in range(1, blocks)]
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


class SmallCnn3d(ZooModel):
    """Three Conv3d-BN-ReLU-MaxPool3d blocks (16/32/64 channels), global average pool, dropout, fc.

    28^3 -> 14^3 -> 7^3 -> 3^3; about 70 thousand parameters and 66 M MACs per volume (ResNet-18-3D: 33 M and 17.8 G),
    so an epoch of a MedMNIST 3-D set (about 1,000 volumes) takes seconds to a minute on two CPU cores.

    Args:
        num_classes: outputs of the fc layer.
        in_channels: channels of the volume.
        width: channels of the first block; the next two have 2x and 4x.
        dropout: dropout probability before the fc layer.
    """

    classifier_name = "fc"

    def __init__(self, num_classes: int = 2, in_channels: int = 1, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        if not (isinstance(width, int) and width >= 1):
            raise ConfigError(f"model option 'width' must be a whole number >= 1, got {width!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"model option 'dropout' must be in [0, 1), got {dropout!r}")
        widths = (width, 2 * width, 4 * width)
        blocks: list[nn.Module] = []
        for inputs, outputs in zip((in_channels, *widths[:-1]), widths):
            blocks += [
                nn.Conv3d(inputs, outputs, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm3d(outputs),
                nn.ReLU(inplace=True),
                nn.MaxPool3d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.num_features = widths[-1]
        self.fc = nn.Linear(self.num_features, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(self.dropout(x))


def _resnet3d(name: str, num_classes: int, in_channels: int, stem: str) -> ResNet3d:
    return ResNet3d(RESNET3D_CFGS[name], num_classes=num_classes, in_channels=in_channels, stem=stem)


@register_model(paper=PAPER, default_input=VOLUME_INPUT, default_classes=2)
def resnet10_3d(num_classes: int = 2, in_channels: int = 1, stem: str = "small") -> ResNet3d:
    return _resnet3d("resnet10_3d", num_classes, in_channels, stem)


@register_model(paper=PAPER, default_input=VOLUME_INPUT, default_classes=2)
def resnet18_3d(num_classes: int = 2, in_channels: int = 1, stem: str = "small") -> ResNet3d:
    return _resnet3d("resnet18_3d", num_classes, in_channels, stem)


@register_model(paper=PAPER, default_input=VOLUME_INPUT, default_classes=2)
def resnet34_3d(num_classes: int = 2, in_channels: int = 1, stem: str = "small") -> ResNet3d:
    return _resnet3d("resnet34_3d", num_classes, in_channels, stem)


@register_model(paper=SMALL_PAPER, default_input=VOLUME_INPUT, default_classes=2)
def cnn3d_small(num_classes: int = 2, in_channels: int = 1, width: int = 16, dropout: float = 0.2) -> SmallCnn3d:
    return SmallCnn3d(num_classes=num_classes, in_channels=in_channels, width=width, dropout=dropout)
