"""torchvision checkpoints load into our models unchanged, and then compute exactly what torchvision computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from cnnlab.errors import ConfigError
from cnnlab.models import create, load_torchvision_weights

# Input side per architecture: 224 where it is cheap; VGG-16-BN and ResNet-50 at a smaller size, which their
# adaptive pools accept (VGG's 7x7 pool then upsamples a 2x2 map, exercising the same op on both sides).
CASES = [("alexnet", 224), ("resnet18", 224), ("vgg16_bn", 64), ("resnet50", 96)]


@pytest.mark.parametrize(("name", "side"), CASES)
def test_outputs_equal_torchvision(name: str, side: int) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours = load_torchvision_weights(create(name), reference.state_dict()).eval()
    assert list(ours.state_dict()) == list(reference.state_dict())

    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = reference(x)
        actual = ours(x)
    assert actual.shape == (2, 1000)
    assert torch.equal(actual, expected)


def test_loads_from_a_pth_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    ours = load_torchvision_weights(create("resnet18"), path)
    assert torch.equal(ours.fc.weight, reference.fc.weight)
    assert torch.equal(ours.layer2[0].downsample[0].weight, reference.layer2[0].downsample[0].weight)


def test_loads_a_wrapped_checkpoint() -> None:
    reference = torchvision.models.resnet18(weights=None)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}
    ours = load_torchvision_weights(create("resnet18"), wrapped)
    assert torch.equal(ours.conv1.weight, reference.conv1.weight)


def test_different_num_classes_names_the_key_and_suggests_reset() -> None:
    reference = torchvision.models.resnet18(weights=None, num_classes=10)
    with pytest.raises(ConfigError, match=r"'fc\.weight'.*\(10, 512\).*\(1000, 512\)") as error:
        load_torchvision_weights(create("resnet18"), reference.state_dict())
    assert "num_classes=10" in str(error.value)
    assert "reset_classifier" in str(error.value)


def test_different_in_channels_names_the_first_conv() -> None:
    reference = torchvision.models.resnet18(weights=None)
    with pytest.raises(ConfigError, match=r"'conv1\.weight'.*in_channels"):
        load_torchvision_weights(create("resnet18", in_channels=1), reference.state_dict())


def test_other_architecture_names_missing_and_unexpected_keys() -> None:
    reference = torchvision.models.alexnet(weights=None)
    # The 2012 AlexNet inserts LRN layers, so its conv indices (and shapes) differ from torchvision's.
    with pytest.raises(
        ConfigError, match=r"missing keys: 'features\.4\.weight'.*unexpected keys: 'features\.3\.weight'"
    ):
        load_torchvision_weights(create("alexnet_paper"), reference.state_dict())


def test_batch_norm_mismatch_points_to_the_bn_variant() -> None:
    reference = torchvision.models.vgg11_bn(weights=None)
    with torch.device("meta"):
        model = create("vgg11")
    with pytest.raises(ConfigError, match="_bn variant"):
        load_torchvision_weights(model, reference.state_dict())


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_torchvision_weights(create("resnet20"), tmp_path / "nope.pth")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="could not be read"):
        load_torchvision_weights(create("resnet20"), path)
