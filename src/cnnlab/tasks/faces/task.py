"""Face recognition: a network that maps a face to an embedding where one person's faces land close together.

Trained with ArcFace (an additive angular margin over the training people, Deng et al. 2019) or batch-hard
triplets over P x K identity batches (Schroff et al. 2015, Hermans et al. 2017); validated and tested on people
never seen in training (verification AUC/EER between pairs of faces). The "same person" threshold is chosen on
the validation people (`calibrate`) and applied unchanged to the test people, as a deployed system would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.data import build_augmenter, make_batches
from cnnlab.data.augment import AugmentSpec
from cnnlab.data.samplers import IdentityBatchSampler
from cnnlab.errors import ConfigError
from cnnlab.models import create
from cnnlab.models.face import EMBEDDERS
from cnnlab.tasks import register_task
from cnnlab.tasks.base import InferenceModule, NormalizedImageTask, StepContext, StepOutput

LOSSES = ("arcface", "triplet")


@dataclass(frozen=True)
class FacesOptions:
    """The faces task's options (`task_options:`; `cnnlab faces train` flags set them).

    image_size: the square face crop side the network sees.
    detect / face_margin: find the largest face (OpenCV's Haar cascade) and crop it with this margin of the
        face's size on each side; `detect: false` takes each image as a crop already (Olivetti, LFW crops).
    test_people / val_people: people held out of training (a count >= 1, or a fraction of the people).
    skip_invalid: skip unreadable files and images without a face (listed in the run's skipped.txt).
    loss: arcface (scale s, angular margin m) or triplet (batch-hard, hinge `triplet_margin`, K images of each
        of batch_size / K people per batch).
    threshold_rule / threshold_far: the "same person" threshold picked on validation people: at the equal
        error rate, or at a false-accept rate.
    """

    image_size: int = 112
    detect: bool = True
    face_margin: float = 0.2
    test_people: float = 0.25
    val_people: float = 0.125
    skip_invalid: bool = False
    loss: str = "arcface"
    arcface_scale: float = 30.0
    arcface_margin: float = 0.5
    triplet_margin: float = 0.2
    images_per_person: int = 4
    threshold_rule: str = "eer"
    threshold_far: float = 0.01

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"task_options.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.threshold_rule not in ("eer", "far"):
            raise ConfigError(f"task_options.threshold_rule must be eer or far, got {self.threshold_rule!r}")
        checks = {
            "image_size": (16 <= self.image_size <= 1024, "a side in [16, 1024]"),
            "face_margin": (0.0 <= self.face_margin <= 1.0, "a fraction of the face size in [0, 1]"),
            "arcface_scale": (self.arcface_scale > 0, "positive"),
            "arcface_margin": (0.0 <= self.arcface_margin < 1.6, "an angle in radians in [0, 1.6)"),
            "triplet_margin": (self.triplet_margin >= 0, ">= 0"),
            "images_per_person": (self.images_per_person >= 2, ">= 2 (a triplet needs two images of a person)"),
            "threshold_far": (0.0 < self.threshold_far < 1.0, "a rate in (0, 1)"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"task_options.{name} must be {expected}, got {getattr(self, name)!r}")


@register_task
class FacesTask(NormalizedImageTask):
    """Face embeddings judged on unseen people: verification (pairs) during training, identification at test."""

    name = "faces"
    Options = FacesOptions
    metrics = {"loss": "min", "accuracy": "max", "active_triplets": "min", "auc": "max", "eer": "min", "tar": "max"}
    default_monitor = "val_auc"  # smoother than the EER on a few validation people
    export_outputs = ("embedding",)

    # -- data and model -----------------------------------------------------------------------------------
    def load_data(self, config: Any):
        from cnnlab.tasks.faces.data import load_face_data

        return load_face_data(config, self.options)

    def data_meta(self, data) -> dict[str, Any]:
        return {
            "source": data.source,
            "format": data.format,
            "people": {name: list(split.classes) for name, split in data.splits().items()},
            "sizes": {name: len(split) for name, split in data.splits().items()},
            "skipped": len(data.skipped),
        }

    def run_files(self, data) -> dict[str, str]:
        return {"skipped.txt": "\n".join(data.skipped) + "\n"} if data.skipped else {}

    def model_meta(self, data) -> dict[str, Any]:
        return {
            "classes": list(data.classes),  # the training people (one ArcFace weight each)
            "num_classes": len(data.classes),
            "input_shape": [data.in_channels, *data.image_size],
            "image_size": int(self.options.image_size),
        }

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        name = spec.get("name")
        if name not in EMBEDDERS:
            raise ConfigError(f"model: the faces task trains {' or '.join(EMBEDDERS)}, got {spec}")
        options = dict(spec.get("options", {}))
        options.setdefault("image_size", meta["image_size"])
        if int(options["image_size"]) != int(meta["image_size"]):
            raise ConfigError(
                f"model_options.image_size {options['image_size']} differs from the crops' {meta['image_size']}; "
                "set the size once with --image-size"
            )
        return create(name, in_channels=meta["input_shape"][0], **options)

    def extra_modules(self, model: nn.Module, meta: dict[str, Any]) -> dict[str, nn.Module]:
        if self.options.loss != "arcface":
            return {}
        from cnnlab.tasks.faces.losses import ArcFace

        return {
            "arcface": ArcFace(
                int(meta["num_classes"]),
                model.embedding_dim,
                scale=self.options.arcface_scale,
                margin=self.options.arcface_margin,
            )
        }

    # -- batches ------------------------------------------------------------------------------------------
    def build_augment(self, config: Any):
        return build_augmenter(AugmentSpec.from_config(dict(config.augment)))

    def train_batches(self, split, config, generator, augment, shard=None):
        sampler = None
        if self.options.loss == "triplet":
            k = self.options.images_per_person
            sampler = IdentityBatchSampler(split.labels, max(2, config.batch_size // k), k)
        # Batch norm in the head cannot normalise a last batch of one face: drop such a remainder.
        drop_last = sampler is None and len(split) % config.batch_size == 1
        return make_batches(
            split,
            config.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=drop_last,
            num_workers=config.workers,
            augment=augment,
            shard=shard,
            batch_sampler=sampler,
        )

    def eval_batches(self, split, batch_size: int):
        return make_batches(split, batch_size, shuffle=False)

    # -- steps --------------------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch, context: StepContext) -> StepOutput:
        images, labels = batch
        labels = labels.to(context.device, non_blocking=True)
        with context.autocast():
            embeddings = model(context.prepare(images.to(context.device, non_blocking=True)))
        embeddings = embeddings.float()
        count = len(labels)
        if self.options.loss == "arcface":
            loss, stats = context.modules["arcface"](embeddings, labels)
            sums = {"loss": loss.detach() * count, "accuracy": stats["accuracy"] * count}
        else:
            from cnnlab.tasks.faces.losses import batch_hard_triplet_loss

            loss, stats = batch_hard_triplet_loss(embeddings, labels, margin=self.options.triplet_margin)
            sums = {"loss": loss.detach() * count, "active_triplets": stats["active"] * count}
        return StepOutput(loss, count, sums, embeddings)

    def evaluation_step(self, model: nn.Module, batch, context: StepContext):
        images, labels = batch
        with context.autocast():
            embeddings = model(context.prepare(images.to(context.device, non_blocking=True)))
        return embeddings.float().cpu(), labels.cpu()

    def validation_metrics(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]):
        from cnnlab.tasks.faces.metrics import verification_report

        report = verification_report(outputs, targets)
        return {"auc": report.auc, "eer": report.eer, "tar": report.tar_at_far.get(0.01, 0.0)}

    def calibrate(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        """The "same person" cosine threshold, chosen on the validation people."""
        from cnnlab.tasks.faces.metrics import choose_threshold

        rule, far = self.options.threshold_rule, self.options.threshold_far
        threshold = choose_threshold(outputs, targets, rule=rule, far=far)
        return {"threshold": round(float(threshold), 6), "rule": rule if rule == "eer" else f"far={far:g}"}

    def test_report(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        from cnnlab.tasks.faces.evaluation import face_report

        threshold = meta.get("calibration", {}).get("threshold")
        return face_report(outputs, targets, threshold)

    # -- inference ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def embed(self, model: nn.Module, preprocess: nn.Module, crops: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """float32 (N, D) unit embeddings of uint8 face crops (N, C, S, S)."""
        model.eval()
        parts = [model(preprocess(crops[i : i + batch])).float() for i in range(0, len(crops), batch)]
        return torch.cat(parts) if parts else torch.empty(0, getattr(model, "embedding_dim", 0))

    def inference_module(self, model: nn.Module, preprocess: nn.Module, meta: dict[str, Any]) -> nn.Module:
        """uint8 face crops -> `embedding` (N, D), L2-normalised by the model itself: what `embed` gives and the
        gallery compares."""
        return InferenceModule(preprocess, model).eval()


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of the weights: a gallery stamped with it refuses embeddings from any other model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
