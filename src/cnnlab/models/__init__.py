"""The model zoo: `create(name, num_classes=..., in_channels=...)` over one registry."""

# Importing each family registers its builders.
from cnnlab.models import alexnet, face, lenet, resnet, resnet3d, resnet_cifar, text, vgg, yolo  # noqa: E402, F401, I001
from cnnlab.models.build import build_from_spec
from cnnlab.models.registry import create, get_entry, list_models, register_model
from cnnlab.models.weights import load_torchvision_weights  # noqa: E402

__all__ = ["build_from_spec", "create", "get_entry", "list_models", "register_model", "load_torchvision_weights"]
