"""Volume augmentation (B, C, D, H, W): exact flips and shifts, rotations against rot90, seeded, dtype-preserving."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import functional as AF
from cnnlab.data.augment import AugmentSpec, build_augmenter
from cnnlab.errors import ConfigError


def volumes(count: int = 16, channels: int = 1, size: tuple[int, int, int] = (6, 8, 10), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, channels, *size), dtype=torch.uint8, generator=generator)


def labels(count: int = 16, classes: int = 3) -> torch.Tensor:
    return torch.arange(count) % classes


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("key", "dim"), [("flip", -1), ("vflip", -2), ("dflip", -3)])
def test_flips_are_exact_per_sample_and_on_their_axis(key, dim):
    x = volumes()
    out, _ = build_augmenter({key: True})(x, labels(), seeded(0))
    flipped = torch.tensor([torch.equal(o, i.flip(dim)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ kept).all()) and 3 < int(flipped.sum()) < 13
    assert out.dtype == torch.uint8


def test_flip_of_a_known_volume():
    x = torch.arange(2 * 3 * 4, dtype=torch.uint8).view(1, 1, 2, 3, 4).repeat(8, 1, 1, 1, 1)
    out = AF.flip(x, torch.tensor([True, False] * 4), dim=-3)
    assert out[0, 0, 0, 0].tolist() == [12, 13, 14, 15] and out[0, 0, 1, 2].tolist() == [8, 9, 10, 11]
    assert torch.equal(out[1], x[1])


def test_shift_moves_a_volume_along_each_axis_with_zero_fill():
    x = volumes(count=2, size=(5, 6, 7))
    out = AF.shift(x, torch.tensor([1, 0]), torch.tensor([0, -2]), torch.tensor([3, 0]))
    # sample 0: out[z, y, x] = in[z + 1, y, x + 3]
    assert torch.equal(out[0, :, :-1, :, :-3], x[0, :, 1:, :, 3:])
    assert not out[0, :, -1].any() and not out[0, :, :, :, -3:].any()
    # sample 1: out[z, y, x] = in[z, y - 2, x]
    assert torch.equal(out[1, :, :, 2:], x[1, :, :, :-2]) and not out[1, :, :, :2].any()


def test_crop_draws_a_depth_shift_too():
    x = volumes(count=32, size=(8, 8, 8))
    out, _ = build_augmenter({"crop": 2})(x, labels(32), seeded(0))
    shifted_in_depth = [not torch.equal(o[:, 2:-2], i[:, 2:-2]) for o, i in zip(out, x)]
    assert sum(shifted_in_depth) > 16 and out.shape == x.shape


def test_rotate_90_about_the_depth_axis_equals_rot90_in_each_slice():
    x = volumes(count=2, channels=2, size=(5, 9, 9)).float()
    theta = AF.affine_matrices(torch.tensor([90.0, -90.0]), torch.ones(2), torch.zeros(2), torch.zeros(2, 2), (9, 9))
    out = AF.affine(x, AF.volume_matrices(theta, torch.ones(2), torch.zeros(2), depth=5))
    torch.testing.assert_close(out[0], torch.rot90(x[0], 1, dims=(-2, -1)), atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(x[1], -1, dims=(-2, -1)), atol=1e-3, rtol=0)
    # and each slice is warped exactly as the 2-D op warps that slice
    torch.testing.assert_close(out[0, :, 2], AF.affine(x[:1, :, 2], theta[:1])[0], atol=1e-4, rtol=0)


def test_scale_zooms_depth_like_height_and_width():
    # A centred 4x4x4 cube in 12^3, zoomed by 1.5 in every axis: the bright region becomes 6 voxels a side.
    x = torch.zeros(1, 1, 12, 12, 12)
    x[:, :, 4:8, 4:8, 4:8] = 1.0
    theta = AF.affine_matrices(torch.zeros(1), torch.tensor([1.5]), torch.zeros(1), torch.zeros(1, 2), (12, 12))
    out = AF.affine(x, AF.volume_matrices(theta, torch.tensor([1.5]), torch.zeros(1), depth=12))
    profile = [(out[0, 0].amax(dim=dims) > 0.5).sum().item() for dims in ((1, 2), (0, 2), (0, 1))]
    assert profile == [6, 6, 6]


def test_depth_translation_moves_whole_slices():
    x = volumes(count=1, size=(8, 6, 6)).float()
    theta = AF.affine_matrices(torch.zeros(1), torch.ones(1), torch.zeros(1), torch.zeros(1, 2), (6, 6))
    out = AF.affine(x, AF.volume_matrices(theta, torch.ones(1), torch.tensor([2.0]), depth=8))
    torch.testing.assert_close(out[0, :, 2:], x[0, :, :-2], atol=1e-4, rtol=0)
    assert not out[0, :, :2].any()


def test_same_generator_same_output_and_per_sample_parameters():
    augment = build_augmenter("rotate=20,scale=0.1,translate=0.1,crop=1,flip,vflip,dflip,jitter=0.3,mixup=0.4")
    x, y = volumes(), labels()
    first = augment(x, y, seeded(5), num_classes=3)
    again = augment(x, y, seeded(5), num_classes=3)
    other = augment(x, y, seeded(6), num_classes=3)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    one = volumes(count=1).expand(16, -1, -1, -1, -1).contiguous()
    for config in ({"rotate": 30}, {"crop": 2}, {"jitter": 0.5}, {"scale": 0.3, "translate": 0.1}):
        out, _ = build_augmenter(config)(one, labels(), seeded(1))
        assert len({bytes(o.numpy().tobytes()) for o in out}) > 8, config


def test_dtypes_are_preserved_and_the_input_untouched():
    augment = build_augmenter({"rotate": 10, "scale": 0.1, "jitter": 0.4})
    x = volumes()
    as_float = x.float() / 255
    before = as_float.clone()
    out_u8, _ = augment(x, labels(), seeded(0))
    out_f, _ = augment(as_float, labels(), seeded(0))
    assert out_u8.dtype == torch.uint8 and out_f.dtype == torch.float32 and out_u8.shape == x.shape
    assert torch.equal(as_float, before)
    assert 0 <= float(out_f.min()) and float(out_f.max()) <= 1
    assert (out_u8.int() - (out_f * 255).round().int()).abs().max() <= 1


def test_16_bit_and_hounsfield_volumes_keep_their_units():
    generator = seeded(0)
    hu = torch.rand(8, 1, 6, 8, 8, generator=generator) * 2000 - 1000  # -1000 (air) .. 1000 (bone)
    out, _ = build_augmenter({"jitter": 0.5})(hu, labels(8), seeded(1))
    assert out.dtype == torch.float32
    for sample, original in zip(out, hu):  # clamped to the sample's own range, not to [0, 1]
        assert float(original.min()) <= float(sample.min()) and float(sample.max()) <= float(original.max())
    assert float(out.max()) > 500 and float(out.min()) < -500
    raw = (hu + 1024).round().to(torch.int16)
    out16, _ = build_augmenter({"rotate": 10, "brightness": 0.2})(raw, labels(8), seeded(1))
    assert out16.dtype == torch.int16 and int(out16.max()) > 1000


def test_brightness_only_scales_intensities_and_contrast_keeps_the_mean():
    x = torch.rand(16, 1, 4, 6, 6, generator=seeded(0)) * 0.5 + 0.25  # no clamping in play
    scaled, _ = build_augmenter({"brightness": 0.3})(x, labels(), seeded(2))
    ratio = (scaled / x).flatten(1)
    torch.testing.assert_close(ratio.amin(1), ratio.amax(1))  # one factor per volume
    assert float(ratio.amin()) >= 0.7 - 1e-6 and float(ratio.amax()) <= 1.3 + 1e-6
    contrasted, _ = build_augmenter({"contrast": 0.2})(x, labels(), seeded(2))
    torch.testing.assert_close(contrasted.mean(dim=(2, 3, 4)), x.mean(dim=(2, 3, 4)), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("config", "key"), [({"saturation": 0.3}, "saturation"), ({"erase": 0.5}, "erase")])
def test_options_that_do_not_apply_to_volumes_are_one_line_config_errors(config, key):
    with pytest.raises(ConfigError, match=rf"^augment\.{key} does not apply to volumes[^\n]*$"):
        build_augmenter(config)(volumes(), labels(), seeded(0))
    with pytest.raises(ConfigError, match=key):
        AugmentSpec.from_config(config).check_spatial_dims(3)


def test_dflip_on_images_is_a_config_error_and_2d_is_unchanged():
    images = volumes()[:, :, 0]
    with pytest.raises(ConfigError, match="augment.dflip mirrors the depth of volumes"):
        build_augmenter("dflip")(images, labels(), seeded(0))
    with pytest.raises(ConfigError, match="dflip"):
        AugmentSpec.from_config("dflip").per_sample_transform((8, 10))
    assert AugmentSpec.from_config("dflip=false").is_empty
    with pytest.raises(ConfigError, match="'augment.dflip' must be true or false"):
        AugmentSpec.from_config({"dflip": "maybe"})
    with pytest.raises(ConfigError, match=r"\(B, C, H, W\) images or \(B, C, D, H, W\) volumes, got 2x8"):
        build_augmenter("flip")(torch.zeros(2, 8), labels(2), seeded(0))


def test_mixup_and_cutmix_on_volumes_give_soft_labels_by_volume_share():
    x = volumes(count=8)
    mixed, soft = build_augmenter({"mixup": 0.4}, num_classes=3)(x, labels(8), seeded(0))
    assert mixed.shape == x.shape and mixed.dtype == torch.uint8 and soft.shape == (8, 3)
    torch.testing.assert_close(soft.sum(1), torch.ones(8))
    ones, zeros = torch.ones(2, 1, 4, 6, 6), torch.zeros(2, 1, 4, 6, 6)
    pasted, soft = build_augmenter({"cutmix": 1.0}, num_classes=2)(
        torch.cat([ones, zeros]), torch.tensor([1, 1, 0, 0]), seeded(3)
    )
    # sample 2 (all zeros) got a box of sample 1 (all ones): its label share of class 1 is the pasted volume share
    share = float(pasted[2].mean())
    assert 0 < share < 1 and torch.isclose(soft[2, 1], torch.tensor(share), atol=1e-6)
    assert torch.equal(pasted[2].amin(dim=1), pasted[2].amax(dim=1))  # the box spans the full depth
