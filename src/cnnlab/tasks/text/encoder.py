"""Text to token ids, the one way training, evaluation, `cnnlab text predict` and the server all use.

The encoder is saved in run.json (tokenizer settings, the vocabulary, the padded length), so a run predicts on
new sentences exactly as it was trained. Every sentence is padded (or cut) to the run's fixed length, as Kim's
code pads to the longest training sentence: a sentence's prediction then never depends on the batch it came in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.tasks.text.tokenize import Tokenizer
from cnnlab.tasks.text.vocab import Vocabulary


class TextEncoder(nn.Module):
    """Tokenizer + vocabulary + padded length; as the engine's input preprocessing it passes ids through."""

    def __init__(self, tokenizer: Tokenizer, vocabulary: Vocabulary, max_length: int) -> None:
        super().__init__()
        self.tokenizer, self.vocabulary, self.max_length = tokenizer, vocabulary, int(max_length)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.tokenizer(text) for text in texts]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """int64 (N, max_length) ids, right-padded with 0 (PAD); longer sentences are cut at max_length."""
        return self.encode_tokens(self.tokens(texts))

    def encode_tokens(self, token_lists: Sequence[list[str]]) -> torch.Tensor:
        return self.vocabulary.encode_batch(list(token_lists), self.max_length)

    def to_meta(self) -> dict[str, Any]:
        return {
            "text": {
                "tokenizer": self.tokenizer.to_meta(),
                "max_length": self.max_length,
                "vocabulary": self.vocabulary.to_meta(),
            }
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> TextEncoder:
        text = meta["text"]
        tokenizer = Tokenizer.from_meta(text["tokenizer"])
        return cls(tokenizer, Vocabulary.from_meta(text["vocabulary"]), int(text["max_length"]))
