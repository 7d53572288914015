"""face_embedder: any zoo backbone -> a unit-length embedding; the head flattens (ArcFace) or averages the map."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models import create


@pytest.mark.parametrize(("pool", "features"), [("flatten", 64 * 8 * 8), ("avg", 64)])
def test_embeddings_are_unit_vectors_from_any_backbone(pool, features):
    model = create("face_embedder", backbone="resnet20", in_channels=1, image_size=32, embedding_dim=24, pool=pool)
    assert model.head[0].num_features == features  # resnet20 at 32x32: a 64x8x8 map
    out = model.eval()(torch.randn(5, 1, 32, 32))
    assert out.shape == (5, 24) and torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_classifier_of_the_backbone_is_dropped():
    model = create("face_embedder", backbone="resnet18", in_channels=3, image_size=64)
    assert not any("fc" in name for name, _ in model.backbone.named_parameters())
    assert model.embedding_dim == 128


def test_a_bad_pool_is_refused():
    with pytest.raises(ConfigError, match="model_options.pool must be one of flatten, avg"):
        create("face_embedder", backbone="resnet20", image_size=32, pool="max")
