"""Building blocks the CNN literature names, and the YAML layer-list builder."""

from cnnlab.layers.activations import ScaledTanh, get_activation
from cnnlab.layers.builder import LayerListNet, SoftmaxHead, build_network, load_network, parse_shape
from cnnlab.layers.constraints import apply_constraints, constrained_modules
from cnnlab.layers.text import MaxNormLinear, MaxOverTime, Parallel, TokenEmbedding

__all__ = [
    "LayerListNet",
    "MaxNormLinear",
    "MaxOverTime",
    "Parallel",
    "ScaledTanh",
    "SoftmaxHead",
    "TokenEmbedding",
    "apply_constraints",
    "build_network",
    "constrained_modules",
    "get_activation",
    "load_network",
    "parse_shape",
]
