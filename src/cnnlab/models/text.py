"""Text CNNs: Kim 2014's sentence CNN and Zhang, Zhao & LeCun 2015's character-level CNN.

Inputs are token ids (N, L), `input_dtype = torch.long`; a registry entry's `default_input` is (L,), a sentence
length, not an image shape. The embedding turns ids into channels-first vectors (N, C, L) for Conv1d.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers.text import MaxNormLinear, MaxOverTime, TokenEmbedding
from cnnlab.models.base import ZooModel
from cnnlab.models.registry import register_model

KIM_PAPER = "Kim 2014, Convolutional Neural Networks for Sentence Classification"
ZHANG_PAPER = "Zhang, Zhao & LeCun 2015, Character-level Convolutional Networks for Text Classification (small)"

# Kim's four variants -> how the embedding is trained. rand and non-static differ only in their initial vectors
# (random, or loaded by the task with `embedding.load_vectors`).
KIM_VARIANTS = {"rand": "learned", "static": "static", "non-static": "learned", "multichannel": "multichannel"}
KIM_SENTENCE_LENGTH = 56  # MR's longest sentence after clean_str (Kim's code: max_l=56)

# Zhang et al. 2015, Table 1 (small frame): (kernel, max-pool after it or None); 256 feature maps each.
CHAR_CONVS: tuple[tuple[int, int | None], ...] = ((7, 3), (7, 3), (3, None), (3, None), (3, None), (3, 3))
CHAR_FILTERS = 256
CHAR_HIDDEN = 1024
CHAR_ALPHABET = 70  # 26 letters, 10 digits, 33 other characters and the new line (Zhang et al. §2.2)
CHAR_INPUT_LENGTH = 1014
CHAR_INIT_STD = 0.05  # "Gaussian distribution with mean 0 and standard deviation 0.05" for the small model (§2.3)


class KimCNN(ZooModel):
    """One convolution layer of several widths over word vectors, max-over-time pooling, dropout, max-norm softmax.

    Wide convolutions (padding h - 1 each side, as Kim's code pads every sentence with zeros), so a filter can fire
    on the first and last words; the PAD vector is zero, so padded tokens and conv padding look alike.
    """

    classifier_name = "fc"
    input_dtype = torch.long
    text_model = True
    # Convolution, ReLU, max over time: a batch cut to its longest sentence + 1 padding column gives the logits of
    # any longer padding (every all-padding window has the same activation), so batches may be trimmed.
    length_invariant = True

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        num_classes: int,
        variant: str = "rand",
        widths: Sequence[int] = (3, 4, 5),
        filters: int = 100,
        dropout: float = 0.5,
        max_norm: float = 3.0,
    ) -> None:
        super().__init__()
        if variant not in KIM_VARIANTS:
            raise ConfigError(f"kim_cnn variant {variant!r} is not one of {', '.join(KIM_VARIANTS)}")
        if not widths or any(int(h) < 1 for h in widths):
            raise ConfigError(f"kim_cnn widths must be positive integers, got {widths!r}")
        self.variant, self.widths, self.max_norm = variant, tuple(int(h) for h in widths), float(max_norm)
        self.embedding = TokenEmbedding(vocab_size, embedding_dim, mode=KIM_VARIANTS[variant])
        channels = self.embedding.out_channels
        self.convs = nn.ModuleList(nn.Conv1d(channels, filters, h, padding=h - 1) for h in self.widths)
        self.pool = MaxOverTime()
        self.dropout = nn.Dropout(dropout)
        self.fc = MaxNormLinear(len(self.widths) * filters, num_classes, max_norm=max_norm)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kim's code: Glorot-uniform filters and zero biases. His softmax starts at zero; Glorot here, so that every
        # layer gets a gradient from the first step (a zero classifier passes none back to the filters).
        for module in (*self.convs, self.fc):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def _feature_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        vectors = self.embedding(ids)
        return [torch.relu(conv(vectors)) for conv in self.convs]

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> the pooled features (N, len(widths) * filters)."""
        return torch.cat([self.pool(maps) for maps in self._feature_maps(ids)], dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new max-norm softmax layer (fine-tuning on another label set)."""
        self.fc = MaxNormLinear(self.fc.in_features, num_classes, max_norm=self.max_norm)

    def ngram_activations(self, ids: torch.Tensor) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """For each width h: (h, values (N, F), starts (N, F)), the n-gram each filter's max-pooling picked.

        `starts` index the unpadded sentence: the window is ids[n, start : start + h]. A window that overhangs the
        sentence's left edge has a negative start (its first -start positions are padding).
        """
        result = []
        for width, maps in zip(self.widths, self._feature_maps(ids)):
            values, positions = maps.max(dim=-1)
            result.append((width, values, positions - (width - 1)))
        return result


class CharCNN(ZooModel):
    """Six temporal convolutions over one-hot characters, three fully connected layers (Zhang et al. 2015)."""

    classifier_name = "classifier.6"
    input_dtype = torch.long
    text_model = True

    def __init__(self, vocab_size: int, num_classes: int, input_length: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = TokenEmbedding(vocab_size, vocab_size, mode="onehot")
        layers: list[nn.Module] = []
        channels, length = vocab_size, input_length
        for kernel, pool in CHAR_CONVS:
            layers += [nn.Conv1d(channels, CHAR_FILTERS, kernel), nn.ReLU()]
            channels, length = CHAR_FILTERS, length - kernel + 1
            if pool:
                layers.append(nn.MaxPool1d(pool))
                length //= pool
        if length < 1:
            raise ConfigError(f"char_cnn input_length {input_length} is too short for its six convolutions")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(CHAR_FILTERS * length, CHAR_HIDDEN),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(CHAR_HIDDEN, CHAR_HIDDEN),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(CHAR_HIDDEN, num_classes),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, CHAR_INIT_STD)
                nn.init.zeros_(module.bias)

    def forward_features(self, ids: torch.Tensor) -> torch.Tensor:
        return self.features(self.embedding(ids))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


@register_model(paper=KIM_PAPER, default_input=(KIM_SENTENCE_LENGTH,), default_classes=2)
def kim_cnn(
    num_classes: int = 2,
    in_channels: int = 1,
    vocab_size: int = 20000,
    embedding_dim: int = 300,
    variant: str = "rand",
    widths: Sequence[int] = (3, 4, 5),
    filters: int = 100,
    dropout: float = 0.5,
    max_norm: float = 3.0,
) -> KimCNN:
    """Kim 2014's CNN (variants rand | static | non-static | multichannel); `in_channels` is ignored (token ids)."""
    return KimCNN(vocab_size, embedding_dim, num_classes, variant, widths, filters, dropout, max_norm)


@register_model(paper=ZHANG_PAPER, default_input=(CHAR_INPUT_LENGTH,), default_classes=4)
def char_cnn(
    num_classes: int = 4,
    in_channels: int = 1,
    vocab_size: int = CHAR_ALPHABET + 2,
    input_length: int = CHAR_INPUT_LENGTH,
    dropout: float = 0.5,
) -> CharCNN:
    """Zhang et al.'s small character CNN; vocab_size = alphabet + PAD + UNK; 4 classes as AG's News."""
    return CharCNN(vocab_size, num_classes, input_length, dropout)
