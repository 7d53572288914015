"""Layers a text CNN needs: token embeddings, side-by-side branches, max-over-time pooling, a max-norm classifier.

Kim (2014), "Convolutional Neural Networks for Sentence Classification": a sentence of word vectors, filters of
several widths side by side, max-over-time pooling, and a softmax layer whose weight vectors are kept under an
L2 norm of 3. Tensors are channels-first, (N, C, L), so the convolutions are plain `nn.Conv1d`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError

EMBEDDING_MODES = ("learned", "static", "multichannel", "onehot")
# Kim's code draws the vectors of words without a pre-trained vector from U[-0.25, 0.25].
RANDOM_VECTOR_SCALE = 0.25


class TokenEmbedding(nn.Module):
    """Token ids (N, L) -> vectors (N, C, L), channels-first for Conv1d; the PAD row stays zero.

    Modes: `learned` (one trainable table: Kim's CNN-rand and CNN-non-static), `static` (one frozen table),
    `multichannel` (Kim's two copies, one frozen and one trained, concatenated on channels: C = 2 * dim) and
    `onehot` (a fixed identity, nothing trained, for the character CNN of Zhang et al. 2015: dim == num_embeddings).
    """

    input_dtype = torch.long

    def __init__(self, num_embeddings: int, dim: int, mode: str = "learned", padding_idx: int | None = 0) -> None:
        super().__init__()
        if mode not in EMBEDDING_MODES:
            raise ConfigError(f"embedding mode {mode!r} is not one of {', '.join(EMBEDDING_MODES)}")
        if mode == "onehot" and dim != num_embeddings:
            raise ConfigError(f"a onehot embedding has dim == vocabulary size ({num_embeddings}), got dim {dim}")
        self.num_embeddings, self.dim, self.mode, self.padding_idx = num_embeddings, dim, mode, padding_idx
        self.tables = nn.ModuleList()
        if mode == "onehot":
            identity = torch.eye(num_embeddings)
            if padding_idx is not None:
                identity[padding_idx] = 0  # Zhang et al.: characters outside the alphabet are all-zero vectors
            self.register_buffer("identity", identity, persistent=False)
            return
        frozen = {"learned": [False], "static": [True], "multichannel": [True, False]}[mode]
        for is_frozen in frozen:
            table = nn.Embedding(num_embeddings, dim, padding_idx=padding_idx)
            table.weight.requires_grad_(not is_frozen)
            self.tables.append(table)
        self.reset_parameters()

    @property
    def out_channels(self) -> int:
        return self.dim * max(len(self.tables), 1)

    def reset_parameters(self) -> None:
        """Kim's random vectors: U[-0.25, 0.25], the PAD row zero."""
        with torch.no_grad():
            for table in self.tables:
                table.weight.uniform_(-RANDOM_VECTOR_SCALE, RANDOM_VECTOR_SCALE)
        self.constrain()

    def load_vectors(self, weights: torch.Tensor) -> None:
        """Copy pre-trained vectors (V, D) into every table (static ones stay frozen); the PAD row is zeroed."""
        if self.mode == "onehot":
            raise ConfigError("a onehot embedding has no table to load word vectors into")
        weights = torch.as_tensor(weights)
        expected = (self.num_embeddings, self.dim)
        if tuple(weights.shape) != expected:
            raise ConfigError(f"word vectors have shape {tuple(weights.shape)}, the embedding needs {expected}")
        with torch.no_grad():
            for table in self.tables:
                table.weight.copy_(weights.to(table.weight))
        self.constrain()

    def constrain(self) -> None:
        """Zero the PAD row again after an optimiser step, as Kim's code does (weight decay could move it)."""
        if self.padding_idx is None:
            return
        with torch.no_grad():
            for table in self.tables:
                table.weight[self.padding_idx].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.mode == "onehot":
            return F.embedding(ids, self.identity).transpose(1, 2)
        vectors = [table(ids) for table in self.tables]
        return torch.cat(vectors, dim=2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}, mode={self.mode!r}, padding_idx={self.padding_idx}"


class Parallel(nn.Module):
    """Branches run on the same input, outputs concatenated on dim 1 (Kim's filter widths side by side)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if not branches:
            raise ConfigError("Parallel needs at least one branch")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class MaxOverTime(nn.Module):
    """(N, C, L) -> (N, C): each feature map's largest value, wherever it occurs (Collobert et al. 2011, Kim 2014)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=-1)


class MaxNormLinear(nn.Linear):
    """A linear layer whose output units' weight vectors (rows) are kept at L2 norm <= max_norm.

    Kim 2014 §2.1: "we rescale w to have ||w||2 = s whenever ||w||2 > s after a gradient descent step" (s = 3).
    Call `constrain()` after each optimiser step (cnnlab.layers.constraints.apply_constraints does).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, max_norm: float = 3.0) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if not max_norm > 0:
            raise ConfigError(f"max_norm must be positive, got {max_norm!r}")
        self.max_norm = float(max_norm)

    def constrain(self) -> None:
        with torch.no_grad():
            norms = self.weight.norm(dim=1, keepdim=True)
            # Rows under the limit are left exactly as they are (Kim's code divides by norm + 1e-7 for all rows).
            scale = torch.where(norms > self.max_norm, self.max_norm / norms.clamp_min(1e-12), torch.ones_like(norms))
            self.weight.mul_(scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_norm={self.max_norm:g}"
