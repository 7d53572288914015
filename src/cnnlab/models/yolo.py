"""Grid detectors on any zoo backbone: `yolo_v1` (Redmon et al. 2016) and `yolo_grid` (the modern grid detector).

Both read the backbone's `forward_features` (every zoo model and YAML layer list has one), so `--backbone resnet18`,
`lenet5_modern` or a layer list all work; the backbone's classifier is pruned (it would hold unused parameters that
DDP refuses and that the optimiser would decay for nothing).

The raw outputs are what the task's loss and decoder read (`cnnlab.tasks.detection`):
- `yolo_v1`: (N, S, S, B*5 + C) -- per cell B boxes (x, y, sqrt w, sqrt h, confidence), then C class scores,
  exactly the paper's 7x7x30 tensor for S=7, B=2, C=20.
- `yolo_grid`: (N, A, H, W, 5 + C) -- per anchor and cell raw (tx, ty, tw, th, objectness, class logits), decoded
  as YOLOv5 does (sigmoid offsets around the cell, sigmoid-squared anchor scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models.registry import create, register_model

YOLO_V1_PAPER = "Redmon et al. 2016, You Only Look Once: Unified, Real-Time Object Detection (CVPR)"
YOLO_GRID_PAPER = (
    "Redmon & Farhadi 2017 (YOLO9000: anchors by k-means, batch norm); Zheng et al. 2020 (CIoU loss); "
    "YOLOv5's cell-neighbour assignment"
)
# YOLOv2's k-means anchors on VOC, in units of a 416-pixel image (pixels), used when the data gives none.
DEFAULT_ANCHORS = ((42, 55), (102, 128), (161, 259), (303, 155), (359, 320))
DEFAULT_ANCHOR_SIZE = 416


class FeatureBackbone(nn.Module):
    """A network's `forward_features`, with every module that path never calls removed.

    Attributes:
        channels: feature-map channels; stride: input pixels per feature-map cell at `image_size` (probed once).
    """

    def __init__(self, net: nn.Module, in_channels: int, image_size: int) -> None:
        super().__init__()
        if not hasattr(net, "forward_features"):
            raise ConfigError(f"backbone {type(net).__name__} has no forward_features(); use a zoo model or layer list")
        self.net = net
        features, self.pruned = _prune_unused(net, torch.zeros(1, in_channels, image_size, image_size))
        if features.ndim != 4:
            raise ConfigError(
                f"backbone: its features must be a (N, C, H, W) map, got shape {tuple(features.shape)}; "
                "a layer-list backbone must end before its flatten/fc layers"
            )
        self.channels = int(features.shape[1])
        self.stride = image_size / features.shape[-1]  # may be fractional (unpadded convs): decoders use it as is

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


@torch.no_grad()
def _prune_unused(net: nn.Module, probe: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Replace the sub-modules `forward_features` never calls with Identity; return the probe's features and the
    dotted names of the modules removed (a classifier checkpoint's keys under them are expected and ignored)."""
    called: set[int] = set()
    hooks = [module.register_forward_hook(lambda m, i, o: called.add(id(m))) for module in net.modules()]
    was_training = net.training
    net.eval()  # the probe must not move batch-norm statistics
    try:
        features = net.forward_features(probe)
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)

    def used(module: nn.Module) -> bool:
        return any(id(m) in called for m in module.modules())

    pruned: list[str] = []

    def prune(parent: nn.Module, prefix: str) -> None:
        for name, child in list(parent.named_children()):
            if not used(child):
                setattr(parent, name, nn.Identity())
                pruned.append(prefix + name)
            else:
                prune(child, f"{prefix}{name}.")

    prune(net, "")
    return features, pruned


def build_backbone(
    backbone: str | Mapping[str, Any], in_channels: int, image_size: int, weights: str | None = None
) -> FeatureBackbone:
    """A zoo model by name, a YAML layer-list file, or a mapping with `layers:`; optionally with a weight file."""
    if isinstance(backbone, Mapping):
        if "layers" not in backbone:
            raise ConfigError("model_options.backbone: a mapping must hold a `layers:` list (a layer-list backbone)")
        from cnnlab.layers import build_network

        net = build_network(list(backbone["layers"]), (in_channels, image_size, image_size), num_classes=1)
    elif str(backbone).endswith((".yaml", ".yml")):
        if not Path(backbone).is_file():
            raise ConfigError(f"model_options.backbone: layer-list file {backbone!r} does not exist")
        from cnnlab.layers import load_network

        net, _ = load_network(backbone, num_classes=1, input_shape=(in_channels, image_size, image_size))
    else:
        net = create(str(backbone), num_classes=1, in_channels=in_channels)
    extractor = FeatureBackbone(net, in_channels, image_size)
    if weights:
        load_backbone_weights(extractor, weights)
    return extractor


def load_backbone_weights(backbone: FeatureBackbone, path: str) -> None:
    """Load a state dict (torchvision's .pth, a cnnlab checkpoint) into the backbone; its classifier keys are ignored.

    Every feature parameter must be in the file with its shape, else a ConfigError names the keys.
    """
    from cnnlab.models.weights import read_state_dict

    state = read_state_dict(path)
    expected = backbone.net.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:6]) + (
            f", ... and {len(missing) - 6} more" if len(missing) > 6 else ""
        )
        raise ConfigError(f"backbone weights {path}: missing keys {shown}; is it a checkpoint of this backbone?")
    unexpected = [k for k in state if k not in expected and not any(k.startswith(p + ".") for p in backbone.pruned)]
    if unexpected:
        raise ConfigError(
            f"backbone weights {path}: {len(unexpected)} keys the backbone does not have (e.g. {unexpected[0]!r}); "
            "is it a checkpoint of another architecture?"
        )
    wrong = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
    if wrong:
        key = wrong[0]
        raise ConfigError(
            f"backbone weights {path}: {key!r} is {tuple(state[key].shape)} in the file but "
            f"{tuple(expected[key].shape)} in the backbone (another architecture or input channel count?)"
        )
    backbone.net.load_state_dict({key: state[key] for key in expected}, strict=True)


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, activation: nn.Module | None = None) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        activation if activation is not None else nn.SiLU(inplace=True),
    )


class YoloV1(nn.Module):
    """YOLOv1: four conv layers and two fully connected layers on the backbone's features, S x S x (B*5 + C) out.

    The paper's head (sec. 2.1, fig. 3): after the pretrained convolutions, four 3x3 conv layers (the second of
    stride 2) with leaky ReLU 0.1, a 4096-unit fully connected layer, dropout 0.5, and a linear layer to
    S*S*(B*5+C). `head_channels=1024, hidden=4096` are the paper's widths; the defaults are smaller so the model
    trains on a CPU (documented departure). The stride-2 conv is kept while the map is at least 2S wide, and an
    adaptive average pool brings any other map size to S x S (the paper's 448 input gives 14 -> 7 exactly).
    """

    def __init__(
        self,
        num_classes: int = 20,
        in_channels: int = 3,
        backbone: str | Mapping[str, Any] = "resnet18",
        image_size: int = 448,
        grid: int = 7,
        boxes: int = 2,
        head_channels: int = 256,
        hidden: int = 512,
        dropout: float = 0.5,
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.grid, self.boxes, self.image_size = num_classes, grid, boxes, image_size
        self.backbone = build_backbone(backbone, in_channels, image_size, backbone_weights)
        side = max(1, round(image_size / self.backbone.stride))
        second_stride = 2 if side >= 2 * grid else 1
        act = nn.LeakyReLU(0.1, inplace=True)
        c = head_channels
        self.head = nn.Sequential(
            nn.Conv2d(self.backbone.channels, c, 3, padding=1), act,
            nn.Conv2d(c, c, 3, stride=second_stride, padding=1), act,
            nn.Conv2d(c, c, 3, padding=1), act,
            nn.Conv2d(c, c, 3, padding=1), act,
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
            nn.Linear(c * grid * grid, hidden), nn.LeakyReLU(0.1, inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, grid * grid * (boxes * 5 + num_classes)),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(x))
        return out.view(x.shape[0], self.grid, self.grid, self.boxes * 5 + self.num_classes)


class YoloGrid(nn.Module):
    """A modern one-scale grid detector: backbone -> conv-BN-SiLU neck -> per-anchor (box, objectness, classes).

    Anchors (w, h in input pixels) come from k-means over the training boxes (the task computes them and stores
    them in run.json); the prediction layer's biases start at the prior objectness and class rates (Lin et al.
    2017's focal-loss prior, as YOLOv5 does), so the first steps are not spent unlearning a 50% objectness guess.
    """

    def __init__(
        self,
        num_classes: int = 20,
        in_channels: int = 3,
        backbone: str | Mapping[str, Any] = "resnet18",
        image_size: int = 320,
        anchors: Sequence[Sequence[float]] | None = None,
        neck_channels: int = 256,
        neck_depth: int = 2,
        backbone_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.num_classes, self.image_size = num_classes, image_size
        if anchors is None:
            scale = image_size / DEFAULT_ANCHOR_SIZE
            anchors = [(w * scale, h * scale) for w, h in DEFAULT_ANCHORS]
        anchor_tensor = torch.as_tensor([list(map(float, a)) for a in anchors], dtype=torch.float32)
        if anchor_tensor.ndim != 2 or anchor_tensor.shape[1] != 2 or not bool((anchor_tensor > 0).all()):
            raise ConfigError(
                f"model_options.anchors: expected a list of positive [width, height] pairs, got {anchors!r}"
            )
        self.register_buffer("anchors", anchor_tensor)
        self.backbone = build_backbone(backbone, in_channels, image_size, backbone_weights)
        self.stride = self.backbone.stride
        layers, channels = [], self.backbone.channels
        for _ in range(neck_depth):
            layers.append(_conv_bn(channels, neck_channels))
            channels = neck_channels
        self.neck = nn.Sequential(*layers)
        self.outputs = 5 + num_classes
        self.predict = nn.Conv2d(channels, len(anchor_tensor) * self.outputs, 1)
        self._init_prior_biases()

    def _init_prior_biases(self) -> None:
        side = max(1, round(self.image_size / self.stride))
        with torch.no_grad():
            bias = self.predict.bias.view(len(self.anchors), self.outputs)
            # ~8 objects per image spread over the cells; at most even odds (a grid of 2x2 or less would otherwise
            # take the log of a negative number: NaN biases).
            objects = min(8.0 / side**2, 0.5)
            bias[:, 4] = torch.log(torch.tensor(objects / (1 - objects + 1e-6))).clamp(max=0.0)
            prior = 0.6 / max(self.num_classes - 0.99, 1.0)
            bias[:, 5:] = torch.log(torch.tensor(prior / (1 - prior)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.predict(self.neck(self.backbone(x)))
        n, _, h, w = out.shape
        return out.view(n, len(self.anchors), self.outputs, h, w).permute(0, 1, 3, 4, 2).contiguous()


@register_model(paper=YOLO_V1_PAPER, default_input=(3, 448, 448), default_classes=20)
def yolo_v1(num_classes: int = 20, in_channels: int = 3, **options: Any) -> YoloV1:
    return YoloV1(num_classes=num_classes, in_channels=in_channels, **options)


@register_model(paper=YOLO_GRID_PAPER, default_input=(3, 320, 320), default_classes=20)
def yolo_grid(num_classes: int = 20, in_channels: int = 3, **options: Any) -> YoloGrid:
    return YoloGrid(num_classes=num_classes, in_channels=in_channels, **options)


DETECTORS = ("yolo_v1", "yolo_grid")
