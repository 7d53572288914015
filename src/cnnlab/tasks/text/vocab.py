"""Token <-> index mapping built from the training sentences; index 0 pads, index 1 stands for unknown words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch

from cnnlab.errors import ConfigError


class Vocabulary:
    """Tokens by descending frequency (ties by first appearance, so the same data give the same indices)."""

    PAD = "<pad>"
    UNK = "<unk>"

    def __init__(self, tokens: list[str], min_freq: int = 1) -> None:
        if tokens[:2] != [self.PAD, self.UNK]:
            raise ConfigError(f"vocabulary: tokens must start with {self.PAD!r}, {self.UNK!r}; got {tokens[:2]}")
        self.tokens = list(tokens)
        self.min_freq = min_freq
        self._index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Count the tokens; keep those seen `min_freq` times or more, at most `max_size` in all (PAD, UNK included)."""
        if min_freq < 1:
            raise ConfigError(f"vocabulary min_freq: expected >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ConfigError(f"vocabulary max_size: expected >= 2 (PAD and UNK), got {max_size}")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        # Counter keeps first-insertion order and sorted() is stable: ties stay in order of first appearance.
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in (cls.PAD, cls.UNK)), key=lambda t: -counts[t]
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([cls.PAD, cls.UNK, *ranked], min_freq=min_freq)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def index(self, token: str) -> int:
        """The token's index, 1 (UNK) when it is not in the vocabulary."""
        return self._index.get(token, 1)

    def encode(self, tokens: list[str]) -> list[int]:
        """Indices of the tokens, out-of-vocabulary ones as 1."""
        index = self._index
        return [index.get(token, 1) for token in tokens]

    def encode_batch(self, token_lists: Iterable[list[str]], max_length: int | None = None) -> torch.Tensor:
        """(N, L) int64 ids right-padded with 0; L = max_length (longer lists cut) or the longest list."""
        encoded = [self.encode(tokens) for tokens in token_lists]
        length = max_length if max_length is not None else max((len(ids) for ids in encoded), default=0)
        batch = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, ids in enumerate(encoded):
            ids = ids[:length]
            batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch

    def coverage(self, token_lists: Iterable[list[str]]) -> float:
        """Fraction of the tokens (counted with repeats) that the vocabulary knows; 0.0 for no tokens."""
        known = total = 0
        for tokens in token_lists:
            total += len(tokens)
            known += sum(1 for token in tokens if self._index.get(token, 1) > 1)
        return known / total if total else 0.0

    def to_meta(self) -> dict:
        """JSON-ready contents for a run folder."""
        return {"tokens": list(self.tokens), "min_freq": self.min_freq}

    @classmethod
    def from_meta(cls, meta: dict) -> Vocabulary:
        """The vocabulary saved by `to_meta`."""
        return cls(list(meta["tokens"]), min_freq=int(meta.get("min_freq", 1)))
