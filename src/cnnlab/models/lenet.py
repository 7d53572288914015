"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to Document Recognition").

Two variants:

- `lenet5`: the network of section II.B as published, 60,000 trainable parameters: C1 (156), trainable subsampling
  S2 (12), C3 with the partial connections of Table I (1,516), S4 (32), C5 (48,120), F6 (10,164), the scaled tanh
  1.7159 tanh(2a/3) after every layer up to F6, and a Euclidean RBF output layer whose centres are fixed.
- `lenet5_modern`: the textbook simplification (ReLU, max-pooling, dense C3, linear output), 61,706 parameters.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.layers.activations import ScaledTanh
from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model

PAPER = "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition"

# Table I: which S2 maps (rows) feed each C3 map (columns). The paper breaks symmetry this way, so different C3 maps
# are forced to extract different features, and keeps the connection count "within reasonable bounds".
C3_TABLE: tuple[str, ...] = (
    "X   XXX  XXXX XX",
    "XX   XXX  XXXX X",
    "XXX   XXX  X XXX",
    " XXX  XXXX  X XX",
    "  XXX  XXXX XX X",
    "   XXX  XXXX XXX",
)

# MNIST's 28x28 digits are centred in a 32x32 field so that stroke end-points and corners can appear at the centre of
# the receptive fields of the top feature detectors (section II.B).
INPUT_SIZE = 32
F6_UNITS = 84  # a 7x12 bitmap per class in the paper's RBF layer
RBF_CODE_SEED = 1998


def c3_connection_table() -> torch.Tensor:
    """Table I as a bool tensor of shape (6, 16): entry [i, j] is True when S2 map i feeds C3 map j."""
    return torch.tensor([[mark == "X" for mark in row] for row in C3_TABLE], dtype=torch.bool, device="cpu")


def _uniform_fan_in(tensor: torch.Tensor, fan_in: int | torch.Tensor) -> None:
    # Appendix A: weights uniform in [-2.4/F, 2.4/F], F the unit's fan-in, so the weighted sums land in the scaled
    # tanh's non-saturated range at the start of training.
    with torch.no_grad():
        tensor.uniform_(-1.0, 1.0).mul_(2.4 / fan_in)


class Subsampling(nn.Module):
    """S2/S4: the sum over each non-overlapping 2x2 window, times one trainable coefficient per map, plus a bias.

    Two parameters per map, so each map learns its own mode once the squashing function follows: with a small
    coefficient it merely blurs (quasi-linear); with a large one it acts as a noisy OR or noisy AND, by its bias.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        _uniform_fan_in(self.weight, 4)
        _uniform_fan_in(self.bias, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window_sum = F.avg_pool2d(x, kernel_size=2, stride=2) * 4
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}"


class PartialConv2d(nn.Module):
    """A convolution in which output map j reads only the input maps i with `table[i, j]` (C3, Table I).

    Only the connected kernels are parameters (`weight` has one k x k kernel per connection), so the parameter count
    is the paper's; the dense kernel tensor is assembled on each forward.
    """

    def __init__(self, table: torch.Tensor, kernel_size: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = table.shape
        self.kernel_size = kernel_size
        self.register_buffer("table", table.clone())
        rows = table.tolist()
        pairs = [(j, i) for j in range(self.out_channels) for i in range(self.in_channels) if rows[i][j]]
        self.register_buffer("out_idx", torch.tensor([j for j, _ in pairs]), persistent=False)
        self.register_buffer("in_idx", torch.tensor([i for _, i in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels))
        fan_in = [sum(row[j] for row in rows) * kernel_size * kernel_size for j in range(self.out_channels)]
        _uniform_fan_in(self.weight, torch.tensor([float(fan_in[j]) for j, _ in pairs]).view(-1, 1, 1))
        _uniform_fan_in(self.bias, torch.tensor(fan_in, dtype=torch.float))

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        dense = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return dense.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        connections = len(self.weight)
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, connections={connections}"


def rbf_code(num_classes: int, dim: int = F6_UNITS, seed: int = RBF_CODE_SEED) -> torch.Tensor:
    """A deterministic +-1 code, one `dim`-vector per class, drawn from a private generator seeded with `seed`.

    The paper's centres are stylised 7x12 bitmaps of the characters (Fig. 3), which it does not publish as data.
    What matters is kept: entries are +-1, where the scaled tanh has its maximal curvature and F6 can reach them
    without saturating, and codes of different classes differ in about half of their 84 entries. Any `num_classes`
    works. The global RNG is untouched, and the centres are saved in the state dict, so checkpoints keep them.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    bits = torch.randint(0, 2, (num_classes, dim), generator=generator, device="cpu")
    return bits.float() * 2 - 1


class EuclideanRBF(nn.Module):
    """Output layer: y_k = ||x - c_k||^2 with fixed centres c_k (a buffer, not a parameter); returns -y as logits.

    The paper trains by lowering the penalty y of the correct class under its discriminative criterion (eq. 9),
    E = y_correct + log(exp(-j) + sum_k exp(-y_k)). Cross-entropy on the logits -y is that criterion with j -> inf,
    so `nn.CrossEntropyLoss` trains this layer as intended, and argmax of the logits is the nearest centre.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = num_classes
        self.register_buffer("centres", rbf_code(num_classes, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.centres).pow(2).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, centres fixed"


class LeNet5(ZooModel):
    """LeNet-5 as published, for 32x32 inputs.

    Smaller inputs (MNIST's 28x28) are padded to 32x32 by replicating the border, i.e. with the background value
    whatever the normalisation, as the paper centres the digits in a 32x32 field. An adaptive average pool after C5
    (the identity at 32x32) lets larger inputs run. Initialisation as the paper (Appendix A): every weight and bias
    uniform in [-2.4/F, 2.4/F], F the fan-in of the unit.
    """

    classifier_name = "rbf"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, pad_to_32: bool = True) -> None:
        super().__init__()
        self.pad_to_32 = pad_to_32
        self.features = nn.Sequential(
            OrderedDict(
                c1=nn.Conv2d(in_channels, 6, kernel_size=5),
                act1=ScaledTanh(),
                s2=Subsampling(6),
                act2=ScaledTanh(),
                c3=PartialConv2d(c3_connection_table(), kernel_size=5),
                act3=ScaledTanh(),
                s4=Subsampling(16),
                act4=ScaledTanh(),
                c5=nn.Conv2d(16, 120, kernel_size=5),
                act5=ScaledTanh(),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.f6 = nn.Linear(120, F6_UNITS)
        self.act6 = ScaledTanh()
        self.rbf = EuclideanRBF(F6_UNITS, num_classes)
        self.num_features = F6_UNITS

        for layer in (self.features.c1, self.features.c5, self.f6):
            fan_in = layer.weight[0].numel()
            _uniform_fan_in(layer.weight, fan_in)
            _uniform_fan_in(layer.bias, fan_in)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.pad_to_32 and (height < INPUT_SIZE or width < INPUT_SIZE):
            top, left = max(INPUT_SIZE - height, 0) // 2, max(INPUT_SIZE - width, 0) // 2
            bottom, right = max(INPUT_SIZE - height, 0) - top, max(INPUT_SIZE - width, 0) - left
            x = F.pad(x, (left, right, top, bottom), mode="replicate")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act6(self.f6(torch.flatten(self.pool(x), 1)))
        return x if pre_logits else self.rbf(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new RBF layer with `num_classes` fixed centres (there are no weights to re-learn in it)."""
        self.rbf = EuclideanRBF(F6_UNITS, num_classes).to(self.f6.weight)  # same device and dtype


class LeNet5Modern(ZooModel):
    """The common modern reading of LeNet-5: ReLU, max-pooling, dense C3, and a plain linear output layer.

    conv1 is padded by 2 so MNIST's 28x28 works without resizing (the paper padded the images instead); an adaptive
    average pool to 5x5 before the fc layers lets other sizes from 12x12 up run. Optional dropout before the two
    last fc layers (0 by default). PyTorch's default layer initialisation.
    """

    classifier_name = "classifier.6"

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((5, 5))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(84, num_classes),
        )
        self.num_features = 84

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.shape[-2:] != (5, 5):  # at 28x28 the pool is the identity; skipping it saved ~10% of a step (bench/)
            x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


@register_model(paper=PAPER, default_input=(1, 32, 32), default_classes=10)
def lenet5(num_classes: int = 10, in_channels: int = 1, pad_to_32: bool = True) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_channels=in_channels, pad_to_32=pad_to_32)


@register_model(paper=PAPER, default_input=(1, 28, 28), default_classes=10)
def lenet5_modern(num_classes: int = 10, in_channels: int = 1, dropout: float = 0.0) -> LeNet5Modern:
    return LeNet5Modern(num_classes=num_classes, in_channels=in_channels, dropout=dropout)
