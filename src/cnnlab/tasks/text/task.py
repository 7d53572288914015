"""Sentence classification with a CNN over word vectors (Kim 2014): the text task of the one engine.

The task owns what differs from images: sentences become token ids (`TextEncoder`, saved in run.json), the
embedding starts from a word-vector file when the variant says so, and batches are (ids, labels). Training,
callbacks, checkpoints, diagnosis and the report are the engine's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from cnnlab.data.augment import AugmentSpec
from cnnlab.errors import ConfigError
from cnnlab.tasks import register_task
from cnnlab.tasks.base import InferenceModule, StepContext, StepOutput, Task
from cnnlab.tasks.classification.metrics import classification_report, loss_and_accuracy
from cnnlab.tasks.text.data import TextSplits, TokenBatches, load_text_data
from cnnlab.tasks.text.encoder import TextEncoder

TOKENIZERS = ("kim", "whitespace", "chars")
VECTOR_VARIANTS = ("static", "non-static", "multichannel")


@dataclass(frozen=True)
class TextOptions:
    """The text task's options (`task_options:`; `cnnlab text train` flags set them).

    tokenizer / lower: Kim's clean_str rules (or plain whitespace, or characters for a character CNN), lower-cased.
    min_freq / max_vocab: words seen fewer times in training (or beyond the max_vocab most frequent) are <unk>.
    max_length: sentences are padded or cut to this many tokens (default: the longest training sentence).
    vectors / vector_scale: a word-vector file (word2vec .bin, GloVe/fastText text) or `glove-6b-50d`; words not in
        it start U[-a, a], a chosen to match the file's variance unless vector_scale gives it (Kim 2014 §3.1).
    encoding, text_column, label_column, coarse_labels: how the files are read (`DESC:manner` -> `DESC`).
    test_fraction: the stratified test part held out when the data has no test split and no --cv.
    bucket: training batches come from chunks of this many batches sorted by length, so that batches cut to
        their longest sentence are short (2.4x fewer positions on MR); 0 draws batches at random, as Kim did.
    folds / fold: this run is fold `fold` of a stratified `folds`-fold cross-validation (`--cv` sets both).
    """

    tokenizer: str = "kim"
    lower: bool = True
    min_freq: int = 1
    max_vocab: int | None = None
    max_length: int | None = None
    vectors: str | None = None
    vector_scale: float | None = None
    encoding: str = "utf-8"
    text_column: str | None = None
    label_column: str | None = None
    coarse_labels: bool = False
    test_fraction: float = 0.1
    bucket: int = 20
    folds: int | None = None
    fold: int = 1

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"task_options.tokenizer must be one of {', '.join(TOKENIZERS)}, got {self.tokenizer!r}")
        checks = {
            "min_freq": (isinstance(self.min_freq, int) and self.min_freq >= 1, "a whole number >= 1"),
            "max_vocab": (self.max_vocab is None or self.max_vocab >= 2, "None or >= 2"),
            "max_length": (self.max_length is None or self.max_length >= 1, "None or a length >= 1"),
            "vector_scale": (self.vector_scale is None or self.vector_scale > 0, "positive"),
            "test_fraction": (0.0 < self.test_fraction < 1.0, "a fraction in (0, 1)"),
            "bucket": (isinstance(self.bucket, int) and self.bucket >= 0, "a whole number >= 0"),
            "folds": (self.folds is None or self.folds >= 2, "None or >= 2"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"task_options.{name} must be {expected}, got {getattr(self, name)!r}")


def _embeddings(model: nn.Module) -> list[nn.Module]:
    from cnnlab.layers.text import TokenEmbedding

    return [module for module in model.modules() if isinstance(module, TokenEmbedding)]


@register_task
class TextTask(Task):
    """One label per sentence out of K (polarity, subjectivity, question type)."""

    name = "text"
    Options = TextOptions
    metrics = {"loss": "min", "accuracy": "max", "macro_f1": "max"}
    default_monitor = "val_accuracy"
    export_outputs = ("logits",)
    sample_unit = "sentences"  # the progress line's throughput unit
    # Image augmentations mean nothing for token ids: the diagnosis prescribes none of them.
    forbidden_augmentations = frozenset({field.name for field in fields(AugmentSpec)} | {"mosaic"})

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._vectors: torch.Tensor | None = None
        self.config: Any = None
        self.trim = False  # the model gives the same logits on batches cut to their longest sentence

    def configure(self, config: Any) -> None:
        self.config = config
        if config.augment:
            raise ConfigError("augment: image augmentations do not apply to sentences; remove --augment")

    # -- data and model -----------------------------------------------------------------------------------
    def load_data(self, config: Any) -> TextSplits:
        data = load_text_data(config, self.options)
        self._vectors = data.vectors
        return data

    def data_meta(self, data: TextSplits) -> dict[str, Any]:
        meta = {
            "source": data.source,
            "format": data.format,
            "class_counts": data.class_counts(),
            "sizes": {name: len(split) for name, split in data.splits().items()},
            "vocabulary_size": len(data.encoder.vocabulary),
            "max_length": data.encoder.max_length,
            "truncated": data.truncated,
        }
        if data.vector_info:
            meta["vectors"] = data.vector_info
        if data.fold:
            meta["fold"] = data.fold
        return meta

    def build_preprocess(self, data: TextSplits) -> nn.Module:
        return data.encoder

    def preprocess_meta(self, preprocess: nn.Module) -> dict[str, Any]:
        return preprocess.to_meta() if isinstance(preprocess, TextEncoder) else {}

    def preprocess_from_meta(self, meta: dict[str, Any]) -> nn.Module:
        return TextEncoder.from_meta(meta)

    def model_meta(self, data: TextSplits) -> dict[str, Any]:
        meta = {
            "num_classes": len(data.classes),
            "classes": list(data.classes),
            "input_shape": [data.encoder.max_length],
            "vocab_size": len(data.encoder.vocabulary),
        }
        if data.vector_info:
            meta["embedding_dim"] = data.vector_info["dim"]
        return meta

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        classes, vocab_size = int(meta["num_classes"]), int(meta["vocab_size"])
        if "layers" in spec:
            from cnnlab.layers import build_network

            model = build_network(spec["layers"], tuple(meta["input_shape"]), classes, vocab_size=vocab_size)
        else:
            model = self._zoo_model(spec, meta, classes, vocab_size)
        embeddings = _embeddings(model)
        if not embeddings:
            raise ConfigError(f"model: the text task trains a net that starts with an embedding (kim_cnn), got {spec}")
        self._load_vectors(embeddings, getattr(model, "variant", None))
        self.trim = bool(getattr(model, "length_invariant", False))
        return model

    def _zoo_model(self, spec: dict[str, Any], meta: dict[str, Any], classes: int, vocab_size: int) -> nn.Module:
        from cnnlab.models import create, get_entry

        name = spec.get("name")
        if getattr(get_entry(name).builder, "text_model", None) is False or len(get_entry(name).default_input) != 1:
            raise ConfigError(f"model: {name} is an image model; the text task trains kim_cnn or char_cnn")
        options = dict(spec.get("options", {}))
        dim = meta.get("embedding_dim")
        if dim is not None and options.setdefault("embedding_dim", dim) != dim:
            raise ConfigError(
                f"model_options.embedding_dim {options['embedding_dim']} differs from the word vectors' {dim}"
            )
        import inspect

        if "input_length" in inspect.signature(get_entry(name).builder).parameters:  # char_cnn: a fixed length
            if self.options.tokenizer != "chars":
                raise ConfigError(f"model: {name} reads characters; add --tokenizer chars")
            options.setdefault("input_length", int(meta["input_shape"][0]))
        return create(name, num_classes=classes, vocab_size=vocab_size, **options)

    def _load_vectors(self, embeddings: list[nn.Module], variant: str | None) -> None:
        """At training time: copy the word vectors into every table that starts from them, and refuse a variant
        that needs vectors without any (or vectors a net would ignore). A run rebuilt for inference skips this."""
        needs = [e for e in embeddings if e.mode in ("static", "multichannel") or getattr(e, "pretrained", False)]
        if self.config is None:
            return
        if self._vectors is None:
            if needs or variant in VECTOR_VARIANTS:
                raise ConfigError(
                    f"the {variant or needs[0].mode} variant starts from word vectors: pass --vectors FILE"
                )
            return
        if variant == "rand":
            raise ConfigError("--vectors initialises the static, non-static and multichannel variants; rand learns "
                              "its vectors from scratch (drop --vectors or choose another --variant)")  # fmt: skip
        for embedding in embeddings:
            if embedding.mode != "onehot":
                embedding.load_vectors(self._vectors)

    def reference_loss(self, meta: dict[str, Any]) -> float:
        return math.log(max(int(meta.get("num_classes", 2)), 2))

    # -- batches ------------------------------------------------------------------------------------------
    def train_batches(self, split, config, generator, augment, shard=None):
        return TokenBatches(
            split,
            config.batch_size,
            shuffle=True,
            generator=generator,
            shard=shard,
            trim=self.trim,
            bucket=self.options.bucket,
        )

    def eval_batches(self, split, batch_size: int):
        return TokenBatches(split, batch_size, trim=self.trim)

    # -- steps --------------------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch, context: StepContext) -> StepOutput:
        ids, labels = batch
        ids, labels = ids.to(context.device, non_blocking=True), labels.to(context.device, non_blocking=True)
        with context.autocast():
            logits = model(ids)
        loss = nn.functional.cross_entropy(logits.float(), labels)
        count = len(labels)
        correct = (logits.detach().argmax(1) == labels).sum()
        return StepOutput(loss, count, {"loss": loss.detach() * count, "accuracy": correct}, logits)

    def evaluation_step(self, model: nn.Module, batch, context: StepContext):
        ids, labels = batch
        with context.autocast():
            logits = model(ids.to(context.device, non_blocking=True))
        return logits.float().cpu(), labels.cpu()

    def validation_metrics(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]):
        return loss_and_accuracy(outputs, targets)

    def test_report(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        report = classification_report(outputs, targets, list(meta["classes"]))
        return {
            "accuracy": report.accuracy,
            "loss": report.loss,
            "macro_f1": report.macro_f1,
            "samples": len(targets),
        }

    # -- inference ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, model: nn.Module, encoder: TextEncoder, texts: list[str], top_k: int = 5):
        """Top-k (class indices, probabilities) per sentence."""
        model.eval()
        probabilities = torch.softmax(model(encoder.encode(texts)).float(), dim=1)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        return indices.tolist(), values.tolist()

    def inference_module(self, model: nn.Module, preprocess: nn.Module, meta: dict[str, Any]) -> nn.Module:
        """int64 token ids (N, L), PAD = 0 (`TextEncoder.encode`) -> logits: the model alone (tokenizing text is no
        tensor operation, so it stays outside; the encoder's forward passes ids through)."""
        return InferenceModule(nn.Identity(), model).eval()

    def export_inputs(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """`tokens` (batch, length): the length axis is symbolic for a length-invariant model (kim_cnn takes any
        sentence length), else the run's padded length (char_cnn's fully connected layers fix it)."""
        length: int | str = "length" if self.length_invariant(meta) else int(meta["input_shape"][0])
        return [{"name": "tokens", "dtype": "int64", "shape": ["batch", length]}]

    def length_invariant(self, meta: dict[str, Any]) -> bool:
        """Whether the run's model gives the same logits for any padded length (read off the model class)."""
        if self.trim:  # set by build_model, which load_run has called
            return True
        try:
            model = TextTask(self.options).build_model(meta["model"], meta)
        except (ConfigError, KeyError, TypeError, ValueError):
            return False
        return bool(getattr(model, "length_invariant", False))
