"""Building blocks the CNN literature names, and the YAML layer-list builder."""

from cnnlab.layers.activations import ScaledTanh, get_activation
from cnnlab.layers.builder import LayerListNet, SoftmaxHead, build_network, load_network, parse_shape

__all__ = [
    "LayerListNet",
    "ScaledTanh",
    "SoftmaxHead",
    "build_network",
    "get_activation",
    "load_network",
    "parse_shape",
]
