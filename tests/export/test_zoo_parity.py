"""Every zoo model exports to ONNX (dynamo exporter) and TorchScript and answers as eager PyTorch within 1e-4.

Outputs are compared as export_run compares them: max |exported - eager| / max(1, max |eager|) <= 1e-4 per output
(absolute for outputs within [-1, 1]; relative to the output's range beyond: box corners in pixels, the large
logits of untrained deep networks). Models are built
untrained, with few classes and the smallest input their architecture takes, through the task
inference module a run of theirs would export (uint8 images in; detectors decoded to boxes and scores). Batch
norm statistics are first set from one batch so that a deep untrained network's outputs stay O(1) (with the
initial running variance of 1, ResNet-110's logits reach ~1e4, where float32 itself is coarser than 1e-4).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab import tasks
from cnnlab.data.preprocess import Preprocess
from cnnlab.export.exporters import (
    Signature,
    export_onnx,
    export_torchscript,
    max_difference,
    run_onnx,
    run_torchscript,
)
from cnnlab.models import create, list_models

TOLERANCE = 1e-4
# Untrained, a 50-block ResNet adds 50 unit-variance branches: its features grow large and its logits are small
# differences of large sums, where float32 rounding alone moves them by ~5e-4; damped branches (gain 0.2, as
# zero-init-residual training starts at 0) keep every layer exercised and the sums well conditioned.
RESIDUAL_GAIN = 0.2
CIFAR_RESNETS = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}


def _image_setup(name: str) -> tuple[nn.Module, list, dict]:
    """(raw-input module, input shape without the batch, meta) for an image or volume model."""
    if name == "face_embedder":
        task, meta = tasks.create("faces"), {"input_shape": [3, 64, 64], "image_size": 64}
        model = create(name, image_size=64)
    elif name.startswith("yolo"):
        task = tasks.create("detection")
        meta = {"num_classes": 3, "input_shape": [3, 128, 128], "image_size": 128}
        model = task.build_model({"name": name}, meta)
    else:
        task = tasks.create("classification")
        if name.endswith("_3d") or name == "cnn3d_small":
            shape = [1, 16, 16, 16]
        elif name.startswith("lenet5"):
            shape = [1, 32, 32] if name == "lenet5" else [1, 28, 28]
        elif name in CIFAR_RESNETS or name.startswith("vgg"):
            shape = [3, 32, 32]
        else:
            shape = [3, 64, 64]
        meta = {"num_classes": 3, "input_shape": shape, "label_mode": "multiclass"}
        model = task.build_model({"name": name}, meta)
    channels = meta["input_shape"][0]
    preprocess = Preprocess([0.5] * channels, [0.25] * channels)
    _set_batch_norm_statistics(model, preprocess(_images(meta["input_shape"], 4, seed=3)))
    return task.inference_module(model, preprocess, meta), meta["input_shape"], meta


def _text_setup(name: str) -> tuple[nn.Module, list, dict]:
    if name == "kim_cnn":
        model = create(name, num_classes=3, vocab_size=50, embedding_dim=16, filters=8)
        length: int | str = "length"
    else:
        model, length = create(name, num_classes=3, input_length=256), 256
    task = tasks.create("text", {"tokenizer": "chars" if name == "char_cnn" else "kim"})
    return task.inference_module(model, nn.Identity(), {}), [length], {"vocab_size": 50}


@torch.no_grad()
def _set_batch_norm_statistics(model: nn.Module, batch: torch.Tensor) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0  # the running statistics become this batch's
    model.train()(batch)
    model.eval()
    for block in model.modules():  # residual branches damped, as a trained net's are: no cancellation of huge sums
        last = getattr(block, "bn3", None) or getattr(block, "bn2", None)
        if "Block" in type(block).__name__ or "Bottleneck" in type(block).__name__:
            last.weight.mul_(RESIDUAL_GAIN)
            last.bias.mul_(RESIDUAL_GAIN)


def _images(shape: list, batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)


def _tokens(batch: int, length: int, seed: int) -> torch.Tensor:
    ids = torch.randint(1, 50, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, length // 2 :] = 0
    return ids


TEXT = ("kim_cnn", "char_cnn")
# One model of each family, and each kind of block (basic residual, plain conv stacks, 3-D, detection heads, text):
# the default run. Their deeper siblings repeat the same blocks and take 8-28 s each to export on 2 cores (the
# dynamo exporter re-traces every op), so they are marked slow; all of them run unless `-m "not slow"`.
FAST = {"lenet5_modern", "resnet20", "resnet18", "cnn3d_small", "alexnet", "yolo_v1", "kim_cnn", "char_cnn"}
MODELS = [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in list_models()]


def _case(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor, Signature]:
    """(module, example batch of 2, check batch of 3, signature); kim_cnn is checked on a longer sentence."""
    if name in TEXT:
        module, shape, _ = _text_setup(name)
        length = shape[0] if isinstance(shape[0], int) else 20
        longer = length if isinstance(shape[0], int) else 45
        axes = {0: "batch"} if isinstance(shape[0], int) else {0: "batch", 1: "length"}
        return module, _tokens(2, length, 0), _tokens(3, longer, 1), Signature(["tokens"], ["logits"], {"tokens": axes})
    module, shape, _ = _image_setup(name)
    outputs = {"yolo_grid": ["boxes", "scores"], "yolo_v1": ["boxes", "scores"], "face_embedder": ["embedding"]}
    signature = Signature(["images"], outputs.get(name, ["logits"]), {"images": {0: "batch"}})
    return module, _images(shape, 2, 0), _images(shape, 3, 1), signature


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_exports_and_matches_eager(name, tmp_path) -> None:
    module, example, check, signature = _case(name)
    module.eval()
    with torch.inference_mode():
        out = module(check)
    expected = [t.numpy() for t in out] if isinstance(out, tuple) else [out.numpy()]
    assert all(np.isfinite(e).all() for e in expected)
    assert export_onnx(module, example, tmp_path / "m.onnx", 18, signature) == {"exporter": "dynamo"}
    onnx_gap = max_difference(run_onnx(tmp_path / "m.onnx", check), expected, scaled=True)
    export_torchscript(module, example, tmp_path / "m.pt")
    scripted = run_torchscript(tmp_path / "m.pt", check)
    script_gap = max_difference(scripted if isinstance(scripted, list) else [scripted], expected, scaled=True)
    assert onnx_gap <= TOLERANCE and script_gap <= TOLERANCE, (onnx_gap, script_gap)
