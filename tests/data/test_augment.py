"""Augmentation: config parsing, per-sample randomness, known answers, determinism, soft labels."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cnnlab.data import Augmenter, AugmentSpec, build_augmenter
from cnnlab.data import functional as AF
from cnnlab.errors import ConfigError


def batch(count=32, channels=3, size=16, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, channels, size, size), dtype=torch.uint8, generator=generator)


def labels(count=32, classes=10) -> torch.Tensor:
    return torch.arange(count) % classes


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_unknown_key_names_it_and_lists_known_keys():
    with pytest.raises(
        ConfigError, match=r"unknown augmentation 'rotation' \(did you mean 'rotate'\?\).*known keys:.*cutmix"
    ):
        AugmentSpec.from_config({"rotation": 10})
    with pytest.raises(ConfigError, match="'blur'.*flip, vflip, crop"):
        AugmentSpec.from_config("blur=3")


def test_config_forms_and_empty_specs():
    spec = AugmentSpec.from_config("rotate=15,flip,crop=4,jitter=0.2")
    assert (spec.rotate, spec.flip, spec.crop, spec.color_factors()) == (15.0, True, 4, (0.2, 0.2, 0.2))
    assert AugmentSpec.from_config({"jitter": {"brightness": 0.3}}).color_factors() == (0.3, 0.0, 0.0)
    assert AugmentSpec.from_config({"rotate": True}).rotate == 15.0
    assert spec.to_dict() == {"rotate": 15.0, "flip": True, "crop": 4, "jitter": 0.2}
    assert build_augmenter(None) is None and build_augmenter({}) is None and build_augmenter("flip=false") is None
    assert isinstance(build_augmenter({"flip": True}), Augmenter)


@pytest.mark.parametrize("config", [{"scale": 1.5}, {"erase": 2}, {"crop": 2.5}, {"rotate": -1}, {"mixup": "lots"}])
def test_out_of_range_values_are_config_errors(config):
    with pytest.raises(ConfigError, match=next(iter(config))):
        AugmentSpec.from_config(config)


def test_flip_is_exact_and_per_sample():
    x = batch()
    out, _ = build_augmenter({"flip": True})(x, labels(), seeded(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and flipped.any() and kept.any()


def test_rotate_90_moves_pixels_counter_clockwise():
    x = batch(count=2, size=9)
    theta = AF.affine_matrices(torch.tensor([90.0, -90.0]), torch.ones(2), torch.zeros(2), torch.zeros(2, 2), (9, 9))
    out = AF.affine(x.float(), theta).round().to(torch.uint8)
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    assert torch.equal(out[1], torch.rot90(x[1], -1, dims=(-2, -1)))
    assert torch.equal(out[0], TF.rotate(x[0], 90.0))


def test_translation_and_crop_shift_known_answers():
    x = batch(count=2, size=8)
    theta = AF.affine_matrices(
        torch.zeros(2), torch.ones(2), torch.zeros(2), torch.tensor([[2.0, 0.0], [0.0, -3.0]]), (8, 8)
    )
    moved = AF.affine(x.float(), theta).round().to(torch.uint8)
    assert torch.equal(moved[0, :, :, 2:], x[0, :, :, :-2]) and not moved[0, :, :, :2].any()
    assert torch.equal(moved[1, :, :-3], x[1, :, 3:]) and not moved[1, :, -3:].any()
    shifted = AF.shift(x, torch.tensor([1, 0]), torch.tensor([0, -2]))
    assert torch.equal(shifted[0, :, :-1], x[0, :, 1:]) and not shifted[0, :, -1].any()
    assert torch.equal(shifted[1, :, :, 2:], x[1, :, :, :-2]) and not shifted[1, :, :, :2].any()


def test_parameters_differ_within_a_batch():
    x = batch(count=1).expand(16, -1, -1, -1).contiguous()
    for config in ({"rotate": 30}, {"crop": 3}, {"jitter": 0.5}, {"scale": 0.3, "shear": 10}):
        out, _ = build_augmenter(config)(x, labels(16), seeded(1))
        distinct = {bytes(o.numpy().tobytes()) for o in out}
        assert len(distinct) > 8, config


def test_same_generator_seed_same_output():
    augment = build_augmenter("rotate=20,translate=0.1,crop=2,flip,vflip,jitter=0.3,erase=0.5,cutmix=1.0,mixup=0.4")
    x, y = batch(), labels()
    first = augment(x, y, seeded(5), num_classes=10)
    again = augment(x, y, seeded(5), num_classes=10)
    other = augment(x, y, seeded(6), num_classes=10)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_dtype_is_preserved_and_input_untouched():
    augment = build_augmenter({"rotate": 10, "jitter": 0.4, "erase": 1.0})
    x = batch()
    x_float = x.float() / 255
    before = x_float.clone()
    out_u8, _ = augment(x, labels(), seeded(0))
    out_f, _ = augment(x_float, labels(), seeded(0))
    assert out_u8.dtype == torch.uint8 and out_f.dtype == torch.float32
    assert torch.equal(x_float, before)
    assert 0 <= float(out_f.min()) and float(out_f.max()) <= 1
    assert (out_u8.int() - (out_f * 255).round().int()).abs().max() <= 1


def test_erase_zeroes_a_rectangle_per_sample():
    x = torch.full((64, 1, 20, 20), 200, dtype=torch.uint8)
    out, _ = build_augmenter({"erase": 0.5})(x, labels(64), seeded(0))
    zeroed = (out == 0).flatten(1).sum(1)
    assert 10 < int((zeroed > 0).sum()) < 54
    assert set(out.unique().tolist()) == {0, 200}
    assert len(set(zeroed.tolist())) > 5


def test_mixup_gives_soft_labels_that_sum_to_one():
    augment = build_augmenter({"mixup": 0.4}, num_classes=10)
    x, y = augment(batch(), labels(), seeded(0))
    assert x.dtype == torch.uint8 and y.dtype == torch.float32 and y.shape == (32, 10)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(32))
    assert (y > 0).sum(dim=1).max() == 2


def test_mix_needs_the_class_count():
    with pytest.raises(ConfigError, match="number of classes"):
        build_augmenter({"cutmix": 1.0})(batch(), labels(), seeded(0))


def test_mix_does_not_disturb_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_augmenter({"mixup": 1.0}, num_classes=10)(batch(), labels(), seeded(0))
    assert torch.equal(torch.rand(3), expected)


def test_per_sample_transform_mirrors_the_spec():
    spec = AugmentSpec.from_config("crop=4,flip,rotate=10,jitter=0.2,erase=0.3,mixup=0.2")
    names = [type(t).__name__ for t in spec.per_sample_transform((32, 32)).transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "RandomAffine", "ColorJitter", "RandomErasing"]
    assert AugmentSpec.from_config({"mixup": 0.2}).per_sample_transform((8, 8)) is None


def test_affine_matches_torchvision_on_a_non_square_image():
    x = torch.rand(3, 3, 20, 30, generator=seeded(0))
    angle, scale, shear = (
        torch.tensor([30.0, 0.0, 25.0]),
        torch.tensor([1.2, 1.0, 0.9]),
        torch.tensor([0.0, 10.0, -8.0]),
    )
    translate = torch.tensor([[3.0, -2.0], [0.0, 0.0], [2.0, 1.0]])
    out = AF.affine(x, AF.affine_matrices(angle, scale, shear, translate, (20, 30)))
    for i in range(3):
        expected = TF.affine(
            x[i],
            angle=-float(angle[i]),
            translate=translate[i].tolist(),
            scale=float(scale[i]),
            shear=[float(shear[i]), 0.0],
            interpolation=TF.InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(out[i, :, 4:-4, 4:-4], expected[:, 4:-4, 4:-4], atol=1e-4, rtol=0)
