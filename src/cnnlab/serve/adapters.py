"""One adapter per task: request bytes or text -> the model's input, and batches of inputs -> the task's answers.

The server only moves bytes; an adapter does the task's work with the code the CLI uses, so an upload gets the
answer `cnnlab predict` (or `detect predict`, `faces identify`, `text predict`) prints for the same file:

- images are decoded by `cnnlab.data.decode` (`decode_bytes`: the decoder, resize and channel conversion that
  training and `predict_files` apply to files), after the pixel limit is checked on the header alone;
- the model runs as the task's `inference_module` (raw uint8 images or token ids in, logits / boxes and scores /
  embeddings out), eagerly under torch ("torch") or as its ONNX export in ONNX Runtime ("onnx"): one module, so the
  two backends answer alike;
- the answers come from the task's own post-processing: `clinical.probabilities`, detection's `select` (thresholds
  and class-wise NMS), the face gallery's search and the run's calibrated threshold, the text encoder.

`prepare` runs on the server's thread pool (one call per item, concurrently); `predict` runs on the one batching
thread with up to a few dozen items and makes one forward pass of them. Nothing here imports `cnnlab.train`.
"""

from __future__ import annotations

import hashlib
import inspect
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.data.decode import (
    convert_channels,
    decode_bytes,
    decode_upload,
    image_size,
    max_image_pixels,
    resize_images,
)
from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.runs import LoadedRun, load_run, read_run_meta

BACKENDS = ("torch", "onnx")
MAX_TEXT_CHARS = 100_000
CACHE_FOLDER = "serve_cache"  # inside the run folder: the ONNX export the onnx backend runs


class InputTooLarge(DataError):
    """An input over the server's limits (pixels from the image header, characters of a text): HTTP 413."""


# -- backends ------------------------------------------------------------------------------------------------------


class TorchBackend:
    """The task's inference module, eager, in inference mode: what `cnnlab predict` computes, as one module."""

    name = "torch"
    dynamic_length = True  # token batches may be cut to their longest sentence (length-invariant text models)

    def __init__(self, run: LoadedRun) -> None:
        self.module = run.task.inference_module(run.model, run.preprocess, run.meta).eval()

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            out = self.module(inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


class OnnxBackend:
    """The same module exported to ONNX (dynamic batch) and run by ONNX Runtime; the export is cached in the run."""

    name = "onnx"

    def __init__(self, run: LoadedRun, checkpoint: str, threads: int | None) -> None:
        from cnnlab.export import onnx_session

        self.path = onnx_export(run, checkpoint)
        self.session = onnx_session(self.path, threads=threads)
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.dynamic_length = len(first.shape) > 1 and not isinstance(first.shape[1], int)

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        results = self.session.run(None, {self.input_name: inputs.contiguous().numpy()})
        return tuple(torch.from_numpy(result) for result in results)


def _cache_key(run: LoadedRun, checkpoint: str) -> str:
    """Changes with the weights file (a retrained run), with cnnlab (another inference module) and with torch
    (another exporter)."""
    from cnnlab import __version__

    weights = run.run_dir / f"{checkpoint}.pt"
    weights = weights if weights.is_file() else run.run_dir / "last.pt"
    stat = weights.stat()
    text = f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}:{__version__}:{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def onnx_export(run: LoadedRun, checkpoint: str = "best") -> Path:
    """The run's ONNX export with a dynamic batch axis: reused when cached, else written by `export_run` into the
    run folder (or, when that is read-only, a temp folder)."""
    from cnnlab.export import export_run

    parameters = inspect.signature(export_run).parameters
    if checkpoint != "best" and "checkpoint" not in parameters:
        raise ConfigError(f"--backend onnx exports the best checkpoint; drop --checkpoint {checkpoint}")
    key = _cache_key(run, checkpoint)
    name = f"model-{checkpoint}-{key}.onnx"
    folder = run.run_dir / CACHE_FOLDER
    try:
        folder.mkdir(exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder)
        probe.close()
    except OSError:
        where = hashlib.sha256(str(run.run_dir.resolve()).encode()).hexdigest()[:12]
        folder = Path(tempfile.gettempdir()) / "cnnlab-serve" / where
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.is_file():
        extra = {"checkpoint": checkpoint} if "checkpoint" in parameters else {}
        export_run(run.run_dir, format="onnx", out=path, dynamic_batch=True, **extra)
    return path


# -- items -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageItem:
    """One decoded upload at the model's size; width/height are the upload's own (detection scales boxes back)."""

    image: torch.Tensor
    width: int
    height: int
    box: list[float] | None = None  # faces: the face found in the upload, in its pixels
    hints: tuple[str, ...] = ()  # classification: how the upload differs from the training images (`predict`'s)


@dataclass(frozen=True)
class TextItem:
    """One sentence as token ids at the run's padded length, and its length in tokens."""

    ids: torch.Tensor
    length: int


# -- adapters --------------------------------------------------------------------------------------------------------


def _model_name(meta: dict[str, Any]) -> str:
    spec = meta.get("model") or {}
    return str(spec.get("name") or ("layers" if "layers" in spec else "custom"))


def _check_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a whole number >= 1, got {top_k!r}")
    return top_k


class Adapter:
    """The common part: the loaded run, the backend and the default top-k (see the module docstring)."""

    task: str = ""
    input_kind: str = "image"

    def __init__(self, run: LoadedRun, backend: TorchBackend | OnnxBackend, top_k: int) -> None:
        self.run, self.backend, self.top_k = run, backend, _check_top_k(top_k)
        self.task = run.task.name

    def metadata(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "model": _model_name(self.run.meta),
            "backend": self.backend.name,
            "classes": list(self.run.classes),
            "input": self.input_metadata(),
            "outputs": list(self.run.task.export_outputs),
            "top_k": self.top_k,
            "run": str(self.run.run_dir),
            "checkpoint_epoch": self.run.checkpoint_epoch,
        }

    def input_metadata(self) -> dict[str, Any]:
        raise NotImplementedError

    def prepare(self, data: bytes | str, name: str = "upload") -> Any:
        raise NotImplementedError

    def predict(self, items: list[Any], top_k: int | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _k(self, top_k: int | None) -> int:
        return min(_check_top_k(top_k) if top_k is not None else self.top_k, max(len(self.run.classes), 1))


class ImageAdapter(Adapter):
    """Image uploads: the pixel limit from the header, then the training decoder at the run's size and channels."""

    input_kind = "image"

    def __init__(self, run, backend, top_k: int, max_pixels: int | None) -> None:
        super().__init__(run, backend, top_k)
        self.channels = int(run.input_shape[0])
        self.size = self.image_shape()
        # Never above decode's own limit: Pillow-read formats are checked against that one while decoding.
        self.max_pixels = min(max_pixels, max_image_pixels()) if max_pixels else max_image_pixels()

    def image_shape(self) -> tuple[int, int]:
        return (int(self.run.input_shape[1]), int(self.run.input_shape[2]))

    def input_metadata(self) -> dict[str, Any]:
        return {"kind": "image", "channels": self.channels, "size": list(self.size), "max_pixels": self.max_pixels}

    def _bytes(self, data: bytes | str, name: str) -> tuple[bytes, int, int]:
        """The upload's bytes and (width, height), refused over the pixel limit before anything is decoded."""
        if isinstance(data, str):
            raise DataError(f"{name}: this {self.task} run takes an image, not text")
        data = bytes(data)
        width, height = image_size(data, name)
        if width * height > self.max_pixels:
            raise InputTooLarge(
                f"{name}: image is {width}x{height} ({width * height:,} pixels), over the server's limit of "
                f"{self.max_pixels:,} pixels"
            )
        return data, width, height

    def prepare(self, data: bytes | str, name: str = "upload") -> ImageItem:
        data, width, height = self._bytes(data, name)
        image = decode_bytes(data, name, self.channels, self.size, self.max_pixels)
        return ImageItem(image, width, height)


class ClassificationAdapter(ImageAdapter):
    """Top-k labels with probabilities (softmax; a sigmoid per label for multi-label runs), as `cnnlab predict`."""

    def __init__(self, run, backend, top_k: int, max_pixels: int | None) -> None:
        from cnnlab.tasks.classification import clinical

        if len(run.input_shape) != 3:
            raise ConfigError(
                f"{run.run_dir}: a run on {len(run.input_shape) - 1}-D volumes {list(run.input_shape)}; the server "
                "takes 2-D images (as `cnnlab predict` does)"
            )
        from cnnlab.evaluate.hints import TrainingProfile

        super().__init__(run, backend, top_k, max_pixels)
        self.label_mode = clinical.mode_of(run.meta)
        self.training = TrainingProfile.of(run.input_shape, run.meta.get("normalization"))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "label_mode": self.label_mode}

    def prepare(self, data: bytes | str, name: str = "upload") -> ImageItem:
        """As `decode_bytes`, keeping the colour of a colour upload to a grey model for the hints, exactly as
        `predict_files` decodes (the model still gets the very bytes a grey decode gives)."""
        from cnnlab.evaluate.hints import hints_for, measure

        data, width, height = self._bytes(data, name)
        native = decode_upload(data, name, self.max_pixels)
        decode_channels = 3 if self.channels == 1 and native.shape[0] == 3 else self.channels
        decoded = convert_channels(resize_images(native, self.size), decode_channels)
        image = convert_channels(decoded, self.channels)
        stats = measure(decoded[None], image[None], [(int(native.shape[0]), (height, width))])[0]
        return ImageItem(image, width, height, hints=tuple(hints_for(stats, self.training)))

    def predict(self, items: list[ImageItem], top_k: int | None = None) -> list[dict[str, Any]]:
        from cnnlab.tasks.classification import clinical

        if not items:
            return []
        (logits,) = self.backend(torch.stack([item.image for item in items]))[:1]
        probabilities = clinical.probabilities(logits, self.label_mode)
        values, indices = probabilities.topk(self._k(top_k), dim=1)
        classes = self.run.classes
        return [
            {
                "task": self.task,
                "top": [{"label": classes[i], "probability": p} for i, p in zip(row_i, row_p)],
                "hints": list(item.hints),
            }
            for item, row_i, row_p in zip(items, indices.tolist(), values.tolist())
        ]


class DetectionAdapter(ImageAdapter):
    """Boxes with class and score in the upload's pixels, as `cnnlab detect predict --json` (same thresholds, NMS
    and rounding): the image is resized to the model's square, the boxes scaled back by the upload's size."""

    def __init__(self, run, backend, top_k: int, max_pixels: int | None) -> None:
        super().__init__(run, backend, top_k, max_pixels)
        self.selection = run.task.selection()

    def image_shape(self) -> tuple[int, int]:
        size = int(self.run.meta["image_size"])
        return (size, size)

    def metadata(self) -> dict[str, Any]:
        selection = self.selection
        return {
            **super().metadata(),
            "selection": {
                "conf_threshold": selection.conf_threshold,
                "nms_iou": selection.nms_iou,
                "max_detections": selection.max_detections,
            },
        }

    def prepare(self, data: bytes | str, name: str = "upload") -> ImageItem:
        data, _, _ = self._bytes(data, name)
        original = decode_upload(data, name, self.max_pixels)
        height, width = original.shape[-2:]
        image = convert_channels(resize_images(original, self.size), self.channels)
        return ImageItem(image, int(width), int(height))

    def predict(
        self, items: list[ImageItem], top_k: int | None = None, conf: float | None = None, iou: float | None = None
    ) -> list[dict[str, Any]]:
        from cnnlab.tasks.detection.postprocess import select

        if not items:
            return []
        boxes, scores = self.backend(torch.stack([item.image for item in items]))[:2]
        side = self.size[0]
        found = select(boxes.float(), scores.float(), side, self._selection(conf, iou))
        return [self._answer(item, result) for item, result in zip(items, found)]

    def _selection(self, conf: float | None, iou: float | None):
        """The run's thresholds, with a request's own score threshold or NMS overlap in their place."""
        if conf is None and iou is None:
            return self.selection
        return replace(
            self.selection,
            conf_threshold=self.selection.conf_threshold if conf is None else conf,
            nms_iou=self.selection.nms_iou if iou is None else iou,
        )

    def _answer(self, item: ImageItem, found: dict[str, torch.Tensor]) -> dict[str, Any]:
        side = self.size[0]
        scale = found["boxes"].new_tensor([item.width / side, item.height / side] * 2)
        names = self.run.classes
        detections = [
            {"label": names[int(label)], "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
            for box, score, label in zip(found["boxes"] * scale, found["scores"], found["labels"])
        ]
        return {"task": self.task, "image": {"width": item.width, "height": item.height}, "detections": detections}


class _Recorder:
    """A face detector that remembers what it found, so the crop and the reported box come from one detection."""

    def __init__(self, detector) -> None:
        self.detector, self.boxes = detector, []

    def detect(self, image: torch.Tensor):
        self.boxes = self.detector.detect(image)
        return self.boxes


class FacesAdapter(ImageAdapter):
    """The face crop training used (largest face, margin, resize; or the whole image for crop runs), embedded and,
    with a gallery, identified as `cnnlab faces identify --json` does: the best matches, and the identity when the
    best score reaches the threshold (the run's calibrated one unless given); without a gallery, the embedding."""

    def __init__(self, face_run, backend, top_k: int, max_pixels: int | None, gallery, threshold) -> None:
        super().__init__(face_run.run, backend, top_k, max_pixels)
        self.face_run, self.crop = face_run, face_run.crop
        self.channels = int(self.crop.channels)
        self.detector = self.crop.detector()
        self.gallery, self.gallery_path = None, None
        self.threshold = None if threshold is None else float(threshold)
        self.rule = "given" if threshold is not None else (face_run.rule or "run")
        if gallery is not None:
            self._open_gallery(gallery)

    def _open_gallery(self, path: str | Path) -> None:
        from cnnlab.tasks.faces.gallery import Gallery

        if self.threshold is None:
            self.threshold = self.face_run.require_threshold()
        self.gallery = Gallery.open(path, model_id=self.face_run.fingerprint, dim=self.face_run.dim)
        self.gallery_path = Path(path)
        if len(self.gallery) == 0:
            self.gallery.close()
            raise ConfigError(f"{path}: the gallery is empty; enroll people first (cnnlab faces enroll)")
        self.gallery.load()

    def image_shape(self) -> tuple[int, int]:
        size = int(self.run.meta["image_size"])
        return (size, size)

    def input_metadata(self) -> dict[str, Any]:
        return {**super().input_metadata(), "detect": bool(self.crop.detect), "margin": float(self.crop.margin)}

    def metadata(self) -> dict[str, Any]:
        meta = {**super().metadata(), "embedding_dim": self.face_run.dim, "gallery": None}
        meta["classes"] = []  # the training people are no answer: identities come from the gallery
        if self.gallery is not None:
            people = self.gallery.people()
            meta["gallery"] = {
                "path": str(self.gallery_path),
                "people": len(people),
                "embeddings": sum(count for _, count in people),
                "threshold": round(float(self.threshold), 4),
                "rule": self.rule,
            }
        return meta

    def _k(self, top_k: int | None) -> int:
        return _check_top_k(top_k) if top_k is not None else self.top_k

    def prepare(self, data: bytes | str, name: str = "upload") -> ImageItem:
        from cnnlab.tasks.faces.detect import crop_face

        data, _, _ = self._bytes(data, name)
        image = convert_channels(decode_upload(data, name, self.max_pixels), self.channels)
        height, width = image.shape[-2:]
        recorder = _Recorder(self.detector) if self.detector is not None else None
        crop = crop_face(image, recorder, self.size, self.crop.margin, name)
        box = None
        if recorder is not None:
            face = max(recorder.boxes, key=lambda found: found.area)
            box = [round(float(v), 1) for v in (face.x1, face.y1, face.x2, face.y2)]
        return ImageItem(crop, int(width), int(height), box)

    def predict(self, items: list[ImageItem], top_k: int | None = None) -> list[dict[str, Any]]:
        if not items:
            return []
        (embeddings,) = self.backend(torch.stack([item.image for item in items]))[:1]
        embeddings = embeddings.float()
        if self.gallery is None:
            return [
                {"task": self.task, "face": {"box": item.box}, "embedding": [round(float(v), 6) for v in row]}
                for item, row in zip(items, embeddings)
            ]
        found = self.gallery.identify(embeddings, top_k=self._k(top_k))
        return [self._identity(item, matches) for item, matches in zip(items, found)]

    def _identity(self, item: ImageItem, matches: list[tuple[str, float]]) -> dict[str, Any]:
        rows = [{"name": name, "score": round(float(score), 4)} for name, score in matches]
        known = bool(rows) and rows[0]["score"] >= self.threshold
        return {
            "task": self.task,
            "face": {"box": item.box},
            "matches": rows,
            "identity": rows[0]["name"] if known else None,
            "threshold": round(float(self.threshold), 4),
        }

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()


class TextAdapter(Adapter):
    """Sentences through the run's saved encoder (tokenizer, vocabulary, padded length), labels as `cnnlab text
    predict --json`; a batch of a length-invariant model (kim_cnn) is cut to its longest sentence + 1, as training's
    evaluation batches are, which gives the logits of the full padded length."""

    input_kind = "text"

    def __init__(self, run, backend, top_k: int, max_chars: int) -> None:
        super().__init__(run, backend, top_k)
        self.encoder = run.preprocess
        self.max_chars = int(max_chars)
        self.trim = bool(getattr(run.task, "trim", False)) and backend.dynamic_length

    def input_metadata(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "max_length": int(self.encoder.max_length),
            "max_chars": self.max_chars,
            "tokenizer": self.encoder.tokenizer.to_meta(),
        }

    def prepare(self, data: bytes | str, name: str = "text") -> TextItem:
        if isinstance(data, (bytes, bytearray)):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{name}: not UTF-8 text (byte 0x{data[error.start]:02x} at {error.start})") from None
        if not isinstance(data, str):
            raise DataError(f"{name}: expected a sentence (a string), got {type(data).__name__}")
        if len(data) > self.max_chars:
            raise InputTooLarge(f"{name}: the text has {len(data):,} characters, over the limit of {self.max_chars:,}")
        if not data.strip():
            raise DataError(f"{name}: the text is empty; expected a sentence")
        ids = self.encoder.encode([data])[0]
        return TextItem(ids, int((ids != 0).sum()))

    def predict(self, items: list[TextItem], top_k: int | None = None) -> list[dict[str, Any]]:
        if not items:
            return []
        ids = torch.stack([item.ids for item in items])
        if self.trim:
            ids = ids[:, : min(max(item.length for item in items) + 1, ids.shape[1])]
        (logits,) = self.backend(ids)[:1]
        values, indices = torch.softmax(logits.float(), dim=1).topk(self._k(top_k), dim=1)
        classes, answers = self.run.classes, []
        for row_i, row_p in zip(indices.tolist(), values.tolist()):
            top = [{"label": classes[i], "probability": round(float(p), 6)} for i, p in zip(row_i, row_p)]
            answers.append(
                {"task": self.task, "label": top[0]["label"], "probability": top[0]["probability"], "top": top}
            )
        return answers


# -- loading ---------------------------------------------------------------------------------------------------------


def _backend(run: LoadedRun, backend: str, checkpoint: str, threads: int | None):
    if backend == "torch":
        if threads:
            torch.set_num_threads(int(threads))
        return TorchBackend(run)
    return OnnxBackend(run, checkpoint, threads)


def _task_name(run_dir: Path) -> str:
    entry = read_run_meta(run_dir).get("task") or {}
    return str(entry.get("name") or "classification") if isinstance(entry, dict) else "classification"


def load_adapter(
    run_dir: str | Path,
    backend: str = "torch",
    *,
    gallery: str | Path | None = None,
    top_k: int = 5,
    max_pixels: int | None = None,
    threads: int | None = None,
    checkpoint: str = "best",
    threshold: float | None = None,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Adapter:
    """The adapter of a run folder's task, with its model loaded on the CPU for `backend` ("torch" or "onnx").

    Args:
        gallery: faces runs: the SQLite gallery to identify against (without one, answers are embeddings).
        top_k: labels (or gallery matches) per answer when a request names none.
        max_pixels: uploads whose header declares more pixels are refused (InputTooLarge) before decoding.
        threshold: faces runs: the "same person" score (default: the one calibrated on validation people).
        max_text_chars: text runs: longer texts are refused (InputTooLarge).

    Raises:
        ConfigError, RunError: an unknown backend, a run folder that cannot be served, an unusable gallery.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint must be best or last, got {checkpoint!r}")
    _check_top_k(top_k)
    run_dir = Path(run_dir)
    name = _task_name(run_dir)
    if gallery is not None and name != "faces":
        raise ConfigError(f"--gallery is for faces runs; {run_dir} is a {name} run")
    if name == "faces":
        from cnnlab.evaluate.faces import load_face_run

        face_run = load_face_run(run_dir, checkpoint=checkpoint)
        engine = _backend(face_run.run, backend, checkpoint, threads)
        return FacesAdapter(face_run, engine, top_k, max_pixels, gallery, threshold)
    if name == "text" and (run_dir / "cv.json").is_file():
        raise RunError(f"{run_dir}: a cross-validation folder; serve one fold's run, e.g. {run_dir / 'fold-01'}")
    run = load_run(run_dir, checkpoint=checkpoint)
    engine = _backend(run, backend, checkpoint, threads)
    if name == "classification":
        return ClassificationAdapter(run, engine, top_k, max_pixels)
    if name == "detection":
        return DetectionAdapter(run, engine, top_k, max_pixels)
    if name == "text":
        return TextAdapter(run, engine, top_k, max_text_chars)
    raise ConfigError(f"{run_dir}: a {name} run, which the server has no adapter for")
