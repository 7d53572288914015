"""Sentences as token-id tensors, split for training: the given splits, a held-out test part, or one fold of a
stratified k-fold cross-validation (Kim 2014 reports MR and Subj as 10-fold CV means).

Where the data names no validation split, a stratified `val_split` of the training part is held out for early
stopping, as Kim did ("we randomly select 10% of the training data as the dev set").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.text.encoder import TextEncoder
from cnnlab.tasks.text.readers import TextCorpus, TextSplit, read_text_data
from cnnlab.tasks.text.tokenize import Tokenizer
from cnnlab.tasks.text.vocab import Vocabulary

CHAR_FRAME = 1014


@dataclass
class TextSet:
    """One split: int64 ids (N, L), int64 labels (N,), and each sentence's text and origin (`file:line`)."""

    ids: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    texts: list[str]
    origins: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor | Sequence[int]) -> TextSet:
        index = torch.as_tensor(indices, dtype=torch.long)
        picked = index.tolist()
        return TextSet(
            self.ids[index],
            self.labels[index],
            self.classes,
            [self.texts[i] for i in picked],
            [self.origins[i] for i in picked],
            self.source,
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


@dataclass
class TextSplits:
    """What the text task trains on; `vectors` is the initial embedding matrix when a vector file was given."""

    train: TextSet
    val: TextSet | None
    test: TextSet | None
    classes: list[str]
    encoder: TextEncoder
    source: str
    format: str
    vectors: torch.Tensor | None = None
    vector_info: dict[str, Any] = field(default_factory=dict)
    fold: dict[str, int] | None = None
    truncated: int = 0

    def splits(self) -> dict[str, TextSet]:
        return {name: split for name in ("train", "val", "test") if (split := getattr(self, name)) is not None}

    def class_counts(self) -> dict[str, list[int]]:
        """Per split, the sentences of each class in `classes` order (as run.json records image counts)."""
        return {name: list(split.class_counts().values()) for name, split in self.splits().items()}


class TokenBatches:
    """Re-iterable (ids, labels) batches with a length; a new permutation from `generator` each epoch.

    `trim` (for length-invariant models, see `KimCNN.length_invariant`): each batch is cut to its longest sentence
    plus one padding column, which gives such a model exactly the logits of the full padded length (every
    all-padding window yields the same activation, and each sentence shorter than the run's length still has one).
    `bucket`: training batches are drawn from chunks of `bucket` batches sorted by length, so that trimmed batches
    hold sentences of similar length (MR: 2.4x fewer token positions than padding to 56). In distributed training
    each global batch is cut into contiguous rank parts (`shard`), as the image loader does."""

    def __init__(
        self,
        split: TextSet,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        shard: tuple[int, int] | None = None,
        trim: bool = False,
        bucket: int = 0,
    ) -> None:
        self.split, self.batch_size, self.shuffle = split, int(batch_size), shuffle
        self.generator, self.shard, self.trim, self.bucket = generator, shard, trim, bucket
        self.lengths = (split.ids != 0).sum(1) if trim else None

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def _batches(self) -> list[torch.Tensor]:
        count = len(self.split)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        if not (self.bucket and self.trim and self.shuffle):
            return list(order.split(self.batch_size))
        batches: list[torch.Tensor] = []
        for chunk in order.split(self.batch_size * self.bucket):
            by_length = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += list(by_length.split(self.batch_size))
        shuffled = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffled]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        full = self.split.ids.shape[1]
        for index in self._batches():
            if self.shard is not None:
                rank, world = self.shard
                index = index[len(index) * rank // world : len(index) * (rank + 1) // world]
            ids = self.split.ids[index]
            if self.trim and len(index):
                ids = ids[:, : min(int(self.lengths[index].max()) + 1, full)]
            yield ids, self.split.labels[index]


# -- splitting --------------------------------------------------------------------------------------------------
def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices, the held-out part stratified by class (scikit-learn)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    counts = Counter(labels.tolist())
    stratify = labels if min(counts.values()) >= 2 and round(fraction * len(labels)) >= len(counts) else None
    try:
        kept, held = train_test_split(indices, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as error:
        raise ConfigError(f"{what}: cannot hold out {fraction:g} of {len(labels)} sentences ({error})") from error
    return np.sort(kept), np.sort(held)


def cv_folds(labels: Sequence[int], folds: int, seed: int) -> list[np.ndarray]:
    """The test indices of each of `folds` stratified, disjoint folds that together cover every sentence."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    smallest = min(Counter(labels.tolist()).values())
    if folds < 2:
        raise ConfigError(f"--cv must be at least 2 folds, got {folds}")
    if smallest < folds:
        raise ConfigError(
            f"--cv {folds}: the smallest class has only {smallest} sentences; use at most that many folds"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros(len(labels)), labels)]


@dataclass
class _Pool:
    """Sentences of one or more read splits, with labels as indices into the corpus' classes."""

    texts: list[str]
    labels: np.ndarray
    origins: list[str]

    @classmethod
    def of(cls, split: TextSplit, classes: list[str]) -> _Pool:
        index = {name: i for i, name in enumerate(classes)}
        return cls(list(split.texts), np.array([index[label] for label in split.labels], dtype=np.int64), split.origins)

    def take(self, indices: np.ndarray) -> _Pool:
        return _Pool([self.texts[i] for i in indices], self.labels[indices], [self.origins[i] for i in indices])

    def __len__(self) -> int:
        return len(self.labels)


def _partition(corpus: TextCorpus, options: Any, config: Any) -> tuple[dict[str, _Pool | None], dict | None]:
    """train / val / test pools as the data and the options say; the fold's number when cross-validating."""
    pools = {name: _Pool.of(split, corpus.classes) for name, split in corpus.splits.items()}
    seed = int(config.seed)
    if options.folds:
        if "test" in pools:
            raise ConfigError(
                f"{corpus.source}: the data has its own test split; --cv is for data without one (MR, Subj)"
            )
        pool = pools.get("all") or pools["train"]
        if not 1 <= options.fold <= options.folds:
            raise ConfigError(f"task_options.fold must be in 1..{options.folds}, got {options.fold}")
        test_index = cv_folds(pool.labels, options.folds, seed)[options.fold - 1]
        rest = np.setdiff1d(np.arange(len(pool)), test_index)
        train, test, val = pool.take(rest), pool.take(test_index), pools.get("val")
        fold = {"fold": options.fold, "folds": options.folds}
    else:
        train, val, test, fold = pools.get("train") or pools["all"], pools.get("val"), pools.get("test"), None
        if test is None:
            kept, held = _stratified_holdout(train.labels, options.test_fraction, seed, "task_options.test_fraction")
            train, test = train.take(kept), train.take(held)
    if val is None and config.val_split > 0:
        kept, held = _stratified_holdout(train.labels, config.val_split, seed + 1, "val_split")
        train, val = train.take(kept), train.take(held)
    return {"train": train, "val": val, "test": test}, fold


# -- loading ----------------------------------------------------------------------------------------------------
def _read(path: str, options: Any) -> TextCorpus:
    return read_text_data(
        path,
        encoding=options.encoding,
        text_column=options.text_column,
        label_column=options.label_column,
        coarse_labels=options.coarse_labels,
    )


def _with_test_file(corpus: TextCorpus, test_data: str | None, options: Any) -> TextCorpus:
    """`--test-data FILE`: that file's sentences are the test split."""
    if not test_data:
        return corpus
    extra = _read(test_data, options)
    test = extra.splits.get("test") or extra.splits.get("all") or next(iter(extra.splits.values()))
    splits = {("train" if name == "all" else name): split for name, split in corpus.splits.items()}
    splits["test"] = test
    classes = sorted(set(corpus.classes) | set(extra.classes))
    return TextCorpus(splits, classes, corpus.format, corpus.source)


def _encoder(train_tokens: list[list[str]], tokenizer: Tokenizer, options: Any) -> TextEncoder:
    vocabulary = Vocabulary.build(train_tokens, min_freq=options.min_freq, max_size=options.max_vocab)
    longest = max((len(tokens) for tokens in train_tokens), default=1)
    # Characters: Zhang et al. 2015's fixed frame of 1,014, which their six convolutions and three pools need.
    length = options.max_length or (CHAR_FRAME if tokenizer.rules == "chars" else longest)
    return TextEncoder(tokenizer, vocabulary, max(int(length), 1))


def _text_set(pool: _Pool, tokens: list[list[str]], encoder: TextEncoder, classes: list[str], source: str) -> TextSet:
    ids = encoder.encode_tokens(tokens)
    return TextSet(ids, torch.as_tensor(pool.labels, dtype=torch.long), classes, pool.texts, pool.origins, source)


def _vectors(options: Any, encoder: TextEncoder, seed: int) -> tuple[torch.Tensor | None, dict[str, Any]]:
    if not options.vectors:
        return None, {}
    from cnnlab.tasks.text.vectors import embedding_matrix, read_vectors

    words = set(encoder.vocabulary.tokens)
    vectors = read_vectors(options.vectors, words)
    matrix, coverage = embedding_matrix(
        vectors, encoder.vocabulary, np.random.default_rng(seed), scale=options.vector_scale
    )
    info = {"source": str(vectors.source), "dim": int(vectors.dim), "coverage": round(float(coverage), 4)}
    return torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)), info


def load_text_data(config: Any, options: Any) -> TextSplits:
    """Read `config.data` (and `config.test_data`), split, tokenise, build the vocabulary on the training part
    only (no test word leaks into training), encode, and read the word vectors the options name."""
    corpus = _with_test_file(_read(config.data, options), config.test_data, options)
    if len(corpus.classes) < 2:
        raise DataError(
            f"{corpus.source}: one class only ({', '.join(corpus.classes)}); a classifier needs two or more"
        )
    pools, fold = _partition(corpus, options, config)
    tokenizer = Tokenizer(rules=options.tokenizer, lower=options.lower)
    tokens = {name: [tokenizer(text) for text in pool.texts] for name, pool in pools.items() if pool is not None}
    encoder = _encoder(tokens["train"], tokenizer, options)
    sets = {
        name: _text_set(pool, tokens[name], encoder, corpus.classes, corpus.source) if pool is not None else None
        for name, pool in pools.items()
    }
    vectors, info = _vectors(options, encoder, int(config.seed))
    truncated = sum(len(t) > encoder.max_length for split_tokens in tokens.values() for t in split_tokens)
    return TextSplits(
        sets["train"], sets["val"], sets["test"], corpus.classes, encoder, corpus.source, corpus.format,
        vectors, info, fold, truncated,
    )  # fmt: skip
