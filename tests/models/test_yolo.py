"""The grid detectors: the paper's YOLOv1 tensor, backbones without their classifiers, backbone weights."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models import create
from cnnlab.models.yolo import build_backbone

TINY = {"layers": [{"conv": {"out": 8, "kernel": 3, "stride": 2, "padding": 1}}, "relu", {"pool": {"size": 2}}]}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_yolo_v1_is_the_papers_7x7x30_tensor_with_its_head():
    model = create("yolo_v1", num_classes=20, backbone="resnet18", image_size=448, head_channels=1024, hidden=4096)
    out = model(torch.zeros(1, 3, 448, 448))
    assert out.shape == (1, 7, 7, 30)
    # four 3x3 convs of 1024 (the second of stride 2: 14x14 -> 7x7), fc 4096, fc 7*7*30 (Redmon et al. 2016, fig. 3)
    convs = (512 * 1024 * 9 + 1024) + 3 * (1024 * 1024 * 9 + 1024)
    fcs = (1024 * 7 * 7 * 4096 + 4096) + (4096 * 7 * 7 * 30 + 7 * 7 * 30)
    assert count(model.head) == convs + fcs
    assert model.head[2].stride == (2, 2)


@pytest.mark.parametrize(
    ("backbone", "params"),
    [("resnet18", 11_689_512 - 513_000), ("lenet5_modern", 6 * 25 + 6 + 16 * 6 * 25 + 16), ("resnet20", 269_722 - 650)],
)
def test_backbones_keep_only_their_feature_layers(backbone, params):
    in_channels = 1 if backbone == "lenet5_modern" else 3
    assert count(build_backbone(backbone, in_channels, 64)) == params  # the zoo count minus the classifier


def test_every_parameter_gets_a_gradient():
    """No parameter the forward never uses: DistributedDataParallel refuses those."""
    for name in ("yolo_v1", "yolo_grid"):
        model = create(name, num_classes=3, in_channels=1, backbone="lenet5_modern", image_size=64)
        model(torch.randn(2, 1, 64, 64)).float().square().mean().backward()
        assert all(p.grad is not None for p in model.parameters()), name


def test_layer_list_backbone_and_fractional_stride():
    grid = create("yolo_grid", num_classes=2, in_channels=1, backbone=TINY, image_size=64)
    assert grid(torch.zeros(1, 1, 64, 64)).shape == (1, 5, 16, 16, 7) and grid.stride == 4
    lenet = create("yolo_grid", num_classes=2, in_channels=1, backbone="lenet5_modern", image_size=128)
    assert lenet.stride == pytest.approx(128 / 30)  # unpadded 5x5 convs: 30 cells over 128 pixels


def test_backbone_weights_load_from_a_classifier_checkpoint(tmp_path):
    source = create("resnet18", num_classes=10, in_channels=3)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)  # the whole classifier, fc included (as torchvision's files are)
    model = create("yolo_grid", num_classes=2, backbone="resnet18", image_size=64, backbone_weights=str(path))
    source.eval(), model.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model.backbone(x), source.forward_features(x))
    torch.save(create("resnet34", num_classes=10).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(ConfigError, match="resnet34.pth"):
        create(
            "yolo_grid",
            num_classes=2,
            backbone="resnet18",
            image_size=64,
            backbone_weights=str(tmp_path / "resnet34.pth"),
        )


def test_bad_anchors_and_backbones_are_one_line_errors():
    with pytest.raises(ConfigError, match="anchors"):
        create("yolo_grid", num_classes=2, backbone="lenet5_modern", in_channels=1, image_size=64, anchors=[[0, 3]])
    with pytest.raises(ConfigError, match="layers"):
        build_backbone({"conv": 3}, 1, 64)
    with pytest.raises(ConfigError, match="unknown model"):
        build_backbone("resnet19", 3, 64)


@pytest.mark.parametrize("image_size", [32, 64, 128])
def test_prior_biases_are_finite_even_on_a_grid_of_one_or_two_cells(image_size):
    model = create("yolo_grid", num_classes=3, image_size=image_size)
    assert torch.isfinite(model.predict.bias).all()
    objectness = model.predict.bias.view(len(model.anchors), model.outputs)[:, 4]
    assert (objectness <= 0).all()  # never more than even odds of an object per cell
