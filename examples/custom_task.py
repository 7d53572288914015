"""A task cnnlab does not ship, trained through the public API: how far was this digit rotated?

    python examples/custom_task.py          # ~10 s on 2 cores; prints the test mean absolute error (10.3 degrees)

The task says what a batch means (a loss and its running sums), its metrics and their directions; the engine
does the rest: optimiser, schedule, early stopping, best.pt/last.pt, metrics.csv, resume, results.json.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from cnnlab.data import DataSplits, ImageSet, load_dataset, make_batches, mnist_path
from cnnlab.models import create
from cnnlab.tasks import StepOutput, Task, register_task
from cnnlab.train import TrainConfig, fit
from cnnlab.train.config import OptimizerConfig

MAX_ANGLE = 45.0  # degrees; predicting 0 for everything scores a mean absolute error of 22.5


@register_task
class DigitRotation(Task):
    """Regress the angle (degrees, within ±45) a digit was rotated by."""

    name = "digit_rotation"
    metrics = {"loss": "min", "mae_degrees": "min"}
    default_monitor = "val_mae_degrees"

    def build_model(self, spec, meta):  # any zoo model (`model:` in the config) with one output
        return create(spec["name"], num_classes=1, in_channels=1, **spec.get("options", {}))

    def train_batches(self, split, config, generator, augment, shard=None):
        return make_batches(split, config.batch_size, shuffle=True, generator=generator, shard=shard)

    def eval_batches(self, split, batch_size):
        return make_batches(split, batch_size)

    def degrees(self, model, images, device):
        return model(images.to(device).float() / 255.0).squeeze(1) * MAX_ANGLE

    def training_step(self, model, batch, context):
        images, angles = batch
        with context.autocast():
            predicted = self.degrees(model, images, context.device).float()
        angles = angles.to(context.device)
        loss = F.smooth_l1_loss(predicted / MAX_ANGLE, angles / MAX_ANGLE)
        sums = {"loss": loss.detach() * len(angles), "mae_degrees": (predicted.detach() - angles).abs().sum()}
        return StepOutput(loss, len(angles), sums)

    def evaluation_step(self, model, batch, context):
        images, angles = batch
        return self.degrees(model, images, context.device).float().cpu(), angles

    def validation_metrics(self, outputs, targets, meta):
        loss = F.smooth_l1_loss(outputs / MAX_ANGLE, targets / MAX_ANGLE)
        return {"loss": float(loss), "mae_degrees": float((outputs - targets).abs().mean())}


def rotated(images: torch.Tensor, seed: int) -> ImageSet:
    """Each digit turned by its own random angle; the angle is the target (a float, not a class)."""
    angles = (torch.rand(len(images), generator=torch.Generator().manual_seed(seed)) * 2 - 1) * MAX_ANGLE
    turned = torch.stack([TF.rotate(image, float(angle)) for image, angle in zip(images, angles)])
    return ImageSet(turned, angles, classes=[], source="MNIST, rotated")


def main(out: str = "runs/digit_rotation", train: int = 6000, epochs: int = 4) -> float:
    mnist = load_dataset(mnist_path(), val_split=0.0)
    test_images = mnist.test.images
    data = DataSplits(
        train=rotated(mnist.train.images[:train], seed=0),
        val=rotated(test_images[:1000], seed=1),
        test=rotated(test_images[1000:3000], seed=2),
        classes=[],
        format="generated",
        source="MNIST, rotated",
    )
    optimizer = OptimizerConfig("adam", lr=3e-3)
    config = TrainConfig(task="digit_rotation", model="lenet5_modern", epochs=epochs, optimizer=optimizer, out=out)
    result = fit(config, data=data, overwrite=True)
    error = result.results["test"]["mae_degrees"]
    print(f"test mean absolute error: {error:.1f} degrees (predicting 0 scores {MAX_ANGLE / 2:.1f})")
    return error


if __name__ == "__main__":
    main()
