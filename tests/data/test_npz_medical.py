"""MedMNIST-style .npz beyond 2-D single-label: 3-D volumes, multi-label targets, 16-bit and float pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import Normalizer, load_dataset
from cnnlab.data.preprocess import Preprocess
from cnnlab.errors import ConfigError, DataError


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def volumes(count: int, shape=(28, 28, 28), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


# ---------------------------------------------------------------- 3-D volumes


def test_medmnist_3d_volumes_become_one_channel_volumes(tmp_path):
    train, test = volumes(6), volumes(3, seed=1)
    path = write_npz(
        tmp_path / "organ.npz",
        train_images=train,
        train_labels=np.array([[0], [1], [2], [0], [1], [2]]),
        test_images=test,
        test_labels=np.array([[2], [1], [0]]),
    )
    splits = load_dataset(path, val_split=0)
    assert splits.train.images.shape == (6, 1, 28, 28, 28) and splits.train.images.dtype == torch.uint8
    assert splits.image_size == (28, 28, 28) and splits.in_channels == 1
    assert torch.equal(splits.train.images[:, 0], torch.from_numpy(train))
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(test))
    assert splits.classes == ["0", "1", "2"] and splits.train.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_rgb_images_stay_2d_and_5d_arrays_are_volumes(tmp_path):
    rgb = np.zeros((4, 28, 28, 3), np.uint8)
    labels = np.array([0, 1, 0, 1])
    assert load_dataset(write_npz(tmp_path / "a.npz", train_images=rgb, train_labels=labels)).image_size == (28, 28)
    last = np.arange(4 * 5 * 6 * 7 * 3, dtype=np.uint8).reshape(4, 5, 6, 7, 3)
    splits = load_dataset(write_npz(tmp_path / "b.npz", train_images=last, train_labels=labels), val_split=0)
    assert splits.train.images.shape == (4, 3, 5, 6, 7)
    assert torch.equal(splits.train.images, torch.from_numpy(last).permute(0, 4, 1, 2, 3))
    first = np.zeros((4, 1, 3, 8, 8), np.uint8)  # a 3-slice volume: 5-D says so (4-D would be RGB images)
    splits = load_dataset(write_npz(tmp_path / "c.npz", train_images=first, train_labels=labels), val_split=0)
    assert splits.train.images.shape == (4, 1, 3, 8, 8)


def test_volumes_resize_trilinear_to_d_h_w_or_a_cube(tmp_path):
    ramp = np.broadcast_to(np.arange(8, dtype=np.uint8)[:, None, None] * 30, (8, 8, 8))
    path = write_npz(tmp_path / "v.npz", train_images=np.stack([ramp, ramp]), train_labels=np.array([0, 1]))
    splits = load_dataset(path, val_split=0, resize=(4, 6, 2))
    assert splits.train.images.shape == (2, 1, 4, 6, 2) and splits.train.images.dtype == torch.uint8
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(ramp.copy()).float()[None, None], size=(4, 6, 2), mode="trilinear", align_corners=False
    )
    assert torch.equal(splits.train.images[0].float(), expected[0].round())
    # depth 8 -> 4 averages slice pairs: 0,30 -> 15; 60,90 -> 75 ...
    assert splits.train.images[0, 0, :, 0, 0].tolist() == [15, 75, 135, 195]
    assert load_dataset(path, val_split=0, resize=4).image_size == (4, 4, 4)
    assert load_dataset(path, val_split=0, resize=(5,)).image_size == (5, 5, 5)


def test_two_numbers_for_volumes_and_three_for_images_are_config_errors(tmp_path):
    path = write_npz(tmp_path / "v.npz", train_images=volumes(2, (6, 6, 6)), train_labels=np.array([0, 1]))
    with pytest.raises(ConfigError, match=r"resize: .*v.npz holds 3-D volumes; expected D,H,W .* got 4,4"):
        load_dataset(path, resize=(4, 4))
    flat = write_npz(tmp_path / "f.npz", train_images=np.zeros((2, 6, 6), np.uint8), train_labels=np.array([0, 1]))
    with pytest.raises(ConfigError, match=r"resize: .*f.npz holds 2-D images; expected H,W .* got 4,4,4"):
        load_dataset(flat, resize=(4, 4, 4))


def test_volumes_to_three_channels_repeat_the_grey_channel(tmp_path):
    path = write_npz(tmp_path / "v.npz", train_images=volumes(2, (5, 6, 7)), train_labels=np.array([0, 1]))
    splits = load_dataset(path, val_split=0, channels=3)
    assert splits.train.images.shape == (2, 3, 5, 6, 7)
    assert torch.equal(splits.train.images[:, 1], splits.train.images[:, 0])


def test_normalizer_and_preprocess_on_volumes(tmp_path):
    data = volumes(3, (5, 5, 5))
    path = write_npz(tmp_path / "v.npz", train_images=data, train_labels=np.array([0, 1, 0]))
    splits = load_dataset(path, val_split=0)
    norm = Normalizer.from_imageset(splits.train)
    assert norm.mean[0] == pytest.approx(data.mean() / 255, abs=1e-9)
    assert norm.std[0] == pytest.approx(data.std() / 255, abs=1e-9)
    out = norm(splits.train.images)
    assert out.shape == (3, 1, 5, 5, 5) and float(out.mean()) == pytest.approx(0, abs=1e-5)
    assert torch.allclose(Preprocess(norm.mean, norm.std)(splits.train.images), out, atol=1e-5)


def test_bad_volume_shapes_name_the_array(tmp_path):
    path = write_npz(tmp_path / "v.npz", train_images=np.zeros((2, 4, 5, 6, 7), np.uint8), train_labels=[0, 1])
    with pytest.raises(DataError, match=r"v.npz \[train_images\]: images have shape \(2, 4, 5, 6, 7\).*C = 1 or 3"):
        load_dataset(path)
    path = write_npz(
        tmp_path / "mix.npz",
        train_images=volumes(2, (5, 5, 5)),
        train_labels=[0, 1],
        test_images=np.zeros((2, 5, 5), np.uint8),
        test_labels=[0, 1],
    )
    with pytest.raises(DataError, match=r"mix.npz: test images are \(2, 1, 5, 5\) but train images are"):
        load_dataset(path)


# ---------------------------------------------------------------- multi-label


def test_multi_label_columns_become_float_multi_hot_targets(tmp_path):
    labels = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
    path = write_npz(
        tmp_path / "chest.npz",
        train_images=np.zeros((4, 8, 8), np.uint8),
        train_labels=labels,
        test_images=np.zeros((2, 8, 8), np.uint8),
        test_labels=labels[:2],
    )
    splits = load_dataset(path, val_split=0)
    assert splits.train.labels.dtype == torch.float32 and splits.train.labels.shape == (4, 3)
    assert splits.train.labels.tolist() == labels.astype(float).tolist()
    assert splits.classes == ["0", "1", "2"] and not splits.train.has_class_labels
    assert splits.class_counts()["train"] == [2, 2, 2]
    named = write_npz(tmp_path / "n.npz", train_images=np.zeros((4, 8, 8)), train_labels=labels, classes=list("abc"))
    assert load_dataset(named, val_split=0).classes == ["a", "b", "c"]


def test_multi_label_val_split_is_random_and_keeps_the_columns(tmp_path):
    labels = np.random.default_rng(0).integers(0, 2, (20, 5))
    labels[:, 4] = 0  # a label no image has: allowed
    path = write_npz(tmp_path / "m.npz", train_images=np.zeros((20, 4, 4), np.uint8), train_labels=labels)
    splits = load_dataset(path, val_split=0.25, seed=3)
    assert len(splits.train) == 15 and len(splits.val) == 5 and splits.val.labels.shape == (5, 5)
    together = torch.cat([splits.train.labels, splits.val.labels]).sum(0)
    assert together.tolist() == labels.sum(0).astype(float).tolist()


def test_multi_label_single_column_stays_single_label(tmp_path):
    path = write_npz(tmp_path / "s.npz", train_images=np.zeros((3, 4, 4), np.uint8), train_labels=[[0], [1], [1]])
    splits = load_dataset(path, val_split=0)
    assert splits.train.labels.dtype == torch.int64 and splits.train.labels.tolist() == [0, 1, 1]


def test_multi_label_values_other_than_0_1_name_item_and_label(tmp_path):
    labels = np.zeros((8, 5), np.int64)
    labels[7, 2] = 3
    path = write_npz(tmp_path / "m.npz", train_images=np.zeros((8, 4, 4), np.uint8), train_labels=labels)
    with pytest.raises(
        DataError, match=r"m.npz \[train_labels\]: labels \(8, 5\) hold value 3 at item 7 \(label 2\); a multi-label"
    ):
        load_dataset(path)
    labels = labels.astype(float)
    labels[7, 2], labels[1, 0] = 0, 0.5
    write_npz(tmp_path / "m.npz", train_images=np.zeros((8, 4, 4), np.uint8), train_labels=labels)
    with pytest.raises(DataError, match=r"hold value 0.5 at item 1 \(label 0\)"):
        load_dataset(path)


def test_multi_label_class_names_must_match_the_columns(tmp_path):
    path = write_npz(
        tmp_path / "m.npz", train_images=np.zeros((2, 4, 4)), train_labels=np.eye(2, 3), classes=["a", "b"]
    )
    with pytest.raises(DataError, match=r"m.npz \[classes\]: names 2 classes but the labels have 3 columns"):
        load_dataset(path)
    path = write_npz(
        tmp_path / "k.npz",
        train_images=np.zeros((2, 4, 4)),
        train_labels=np.eye(2, 3),
        test_images=np.zeros((2, 4, 4)),
        test_labels=np.array([0, 1]),
    )
    with pytest.raises(DataError, match=r"k.npz \[test_labels\]: labels have shape \(2,\) but .*\(2, 3\)"):
        load_dataset(path)


# ---------------------------------------------------------------- 16-bit and float pixels


def test_16_bit_images_keep_their_full_range(tmp_path):
    images = np.random.default_rng(0).integers(0, 65536, (4, 6, 6)).astype(np.uint16)
    images[0, 0, 0] = 65535
    path = write_npz(tmp_path / "u16.npz", train_images=images, train_labels=[0, 1, 0, 1])
    splits = load_dataset(path, val_split=0)
    assert splits.train.images.dtype == torch.uint16
    assert np.array_equal(splits.train.images[:, 0].to(torch.int32).numpy(), images.astype(np.int32))
    norm = Normalizer.from_imageset(splits.train)
    assert norm.mean[0] == pytest.approx(images.mean()) and norm.std[0] == pytest.approx(images.std())
    hu = (np.arange(4 * 6 * 6).reshape(4, 6, 6) * 3 - 1024).astype(np.int16)
    splits = load_dataset(write_npz(tmp_path / "i16.npz", train_images=hu, train_labels=[0, 1, 0, 1]), val_split=0)
    assert splits.train.images.dtype == torch.int16 and int(splits.train.images.min()) == -1024


def test_16_bit_resize_stays_16_bit(tmp_path):
    images = np.full((2, 8, 8), 40000, np.uint16)
    path = write_npz(tmp_path / "u.npz", train_images=images, train_labels=[0, 1])
    splits = load_dataset(path, resize=4, val_split=0)
    assert splits.train.images.dtype == torch.uint16 and splits.train.images.shape == (2, 1, 4, 4)
    assert splits.train.images.to(torch.int32).unique().tolist() == [40000]


def test_wide_integers_get_the_narrowest_dtype_that_holds_them(tmp_path):
    def dtype_of(array):
        path = write_npz(tmp_path / "w.npz", train_images=array, train_labels=[0, 1])
        return load_dataset(path, val_split=0).train.images.dtype

    assert dtype_of(np.array([0, 255], np.int64)[:, None, None] * np.ones((2, 3, 3), np.int64)) == torch.uint8
    assert dtype_of(np.array([0, 1000], np.int64)[:, None, None] * np.ones((2, 3, 3), np.int64)) == torch.uint16
    assert dtype_of(np.array([-1000, 3000], np.int32)[:, None, None] * np.ones((2, 3, 3), np.int32)) == torch.int16
    assert dtype_of(np.array([-1, 70000], np.int64)[:, None, None] * np.ones((2, 3, 3), np.int64)) == torch.int32
    with pytest.raises(DataError, match=r"w.npz: pixel values span 0..10000000000000; expected"):
        dtype_of(np.array([0, 10**13], np.int64)[:, None, None] * np.ones((2, 3, 3), np.int64))


def test_floats_in_0_1_become_bytes_other_floats_stay_float32(tmp_path):
    unit = np.linspace(0, 1, 2 * 9).reshape(2, 3, 3)
    splits = load_dataset(write_npz(tmp_path / "u.npz", train_images=unit, train_labels=[0, 1]), val_split=0)
    assert splits.train.images.dtype == torch.uint8 and int(splits.train.images.max()) == 255
    hu = np.array([-1000.5, 0.0, 2500.25] * 6).reshape(2, 3, 3)
    splits = load_dataset(write_npz(tmp_path / "h.npz", train_images=hu, train_labels=[0, 1]), val_split=0)
    assert splits.train.images.dtype == torch.float32
    assert splits.train.images[0, 0, 0].tolist() == [-1000.5, 0.0, 2500.25]
    with pytest.raises(DataError, match=r"\[train_images\]: image 1 holds NaN or infinite"):
        bad = hu.copy()
        bad[1, 2, 2] = np.inf
        load_dataset(write_npz(tmp_path / "n.npz", train_images=bad, train_labels=[0, 1]))


def test_splits_share_one_dtype_chosen_from_all_of_them(tmp_path):
    """A test split in [0, 1] and a train split beyond it are kept in the same units, not 8-bit and float."""
    path = write_npz(
        tmp_path / "s.npz",
        train_images=np.full((2, 3, 3), 2.0),
        train_labels=[0, 1],
        test_images=np.full((2, 3, 3), 0.5),
        test_labels=[0, 1],
    )
    splits = load_dataset(path, val_split=0)
    assert splits.train.images.dtype == splits.test.images.dtype == torch.float32
    assert float(splits.test.images.max()) == 0.5
