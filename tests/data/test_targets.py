"""The opened data layer: any target, any dtype, volumes, group-disjoint splits, distributed shards, and
one decode path for training and prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import ImageSet, Normalizer, load_dataset, make_batches
from cnnlab.data.loader import shard_bounds
from cnnlab.data.preprocess import Preprocess, read_images
from cnnlab.data.splits import group_split, split_off_val
from cnnlab.errors import DataError


def test_float_multi_hot_and_ragged_targets_batch_with_their_images():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 2, 2).contiguous()
    multi_hot = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]], dtype=torch.float32)
    boxes = [{"boxes": torch.rand(i, 4), "labels": torch.arange(i)} for i in range(6)]
    for targets in (multi_hot, boxes):
        data = ImageSet(images, targets, ["a", "b", "c"])
        generator = torch.Generator().manual_seed(0)
        for x, y in make_batches(data, 4, shuffle=True, generator=generator):
            ids = x[:, 0, 0, 0].long()  # each image's pixel value is its index
            if isinstance(targets, list):
                assert [len(item["labels"]) for item in y] == ids.tolist()
            else:
                assert torch.equal(y, multi_hot[ids])
    assert ImageSet(images, multi_hot, ["a", "b", "c"]).class_counts() == [3, 3, 3]


def test_sixteen_bit_and_float_images_keep_their_range():
    rng = np.random.default_rng(0)
    raw = torch.from_numpy(rng.integers(0, 4096, (20, 1, 4, 4)).astype(np.int16))  # 12-bit CT-like values
    data = ImageSet(raw, torch.zeros(20, dtype=torch.int64), ["x"])
    normalizer = Normalizer.from_imageset(data)
    assert normalizer.mean[0] == pytest.approx(float(raw.double().mean()), rel=1e-9)
    assert normalizer.std[0] == pytest.approx(float(raw.double().std(unbiased=False)), rel=1e-9)
    batch = next(iter(make_batches(data, 20)))[0]
    assert batch.dtype == torch.int16 and int(batch.max()) > 255  # no truncation to 8 bits
    normalised = Preprocess(normalizer.mean, normalizer.std)(batch)
    assert float(normalised.mean()) == pytest.approx(0.0, abs=1e-5) and float(normalised.std(unbiased=False)) == (
        pytest.approx(1.0, abs=1e-4)
    )


def test_volumes_are_five_dimensional_sets():
    volumes = torch.rand(4, 1, 3, 5, 5)
    data = ImageSet(volumes, [0, 1, 0, 1], ["no", "yes"])
    assert data.image_size == (3, 5, 5) and "1x3x5x5" in repr(data)
    x, y = next(iter(make_batches(data, 4)))
    assert x.shape == (4, 1, 3, 5, 5)
    assert Preprocess([0.5], [0.25])(x).shape == (4, 1, 3, 5, 5)
    with pytest.raises(DataError, match="must be an"):
        ImageSet(torch.rand(4, 5, 5), [0, 1, 0, 1], ["no", "yes"])


def test_group_split_keeps_every_identity_on_one_side():
    groups = np.repeat(np.arange(30), np.arange(1, 31) % 5 + 2)  # 30 people, 2-6 images each
    train, val = group_split(groups, 0.2, seed=3)
    assert set(groups[train]).isdisjoint(groups[val])
    assert len(train) + len(val) == len(groups) and 0.15 < len(val) / len(groups) < 0.3
    assert np.array_equal(group_split(groups, 0.2, seed=3)[1], val)  # seeded
    data = ImageSet(torch.zeros(len(groups), 1, 2, 2, dtype=torch.uint8), groups % 2, ["a", "b"], groups=groups)
    kept, held = split_off_val(data, 0.2, seed=3)
    assert set(kept.groups).isdisjoint(held.groups)


@pytest.mark.parametrize("count", [64, 65, 7])
def test_shards_of_a_global_batch_are_contiguous_and_cover_it(count):
    parts = [shard_bounds(count, (rank, 3)) for rank in range(3)]
    assert parts[0][0] == 0 and parts[-1][1] == count
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1


def test_a_final_batch_too_small_for_every_rank_is_dropped():
    data = ImageSet(torch.zeros(9, 1, 1, 1, dtype=torch.uint8), list(range(9)), [str(i) for i in range(9)])
    batches = make_batches(data, 4, shard=(1, 2))
    assert len(batches) == 2 and [len(y) for _, y in batches] == [2, 2]  # 4 + 4 + 1: the lone image is dropped
    assert len(make_batches(data, 4)) == 3


def test_predict_decodes_a_16_bit_png_exactly_as_training_does(tmp_path):
    """A second decoder once made a 16-bit PNG differ from training by up to 254 grey levels."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(3):
            array = rng.integers(0, 65536, (6, 6), dtype=np.uint16)
            Image.fromarray(array).save(folder / f"{i}.png")  # a 16-bit greyscale PNG
    splits = load_dataset(tmp_path, val_split=0.0)
    train = splits.train
    decoded = read_images(train.paths, train.channels, train.image_size)
    assert torch.equal(decoded, train.images)


def test_identity_sampler_gives_p_identities_of_k_samples_through_make_batches():
    from cnnlab.data.samplers import IdentityBatchSampler

    identities = np.repeat(np.arange(10), [5, 4, 4, 3, 6, 1, 4, 4, 5, 2])  # two people have fewer than 3 images
    images = torch.arange(len(identities), dtype=torch.uint8).view(-1, 1, 1, 1)
    data = ImageSet(images, identities, [f"person{i}" for i in range(10)], groups=identities)
    sampler = IdentityBatchSampler(identities, p=4, k=3)
    batches = make_batches(data, 12, generator=torch.Generator().manual_seed(0), batch_sampler=sampler)
    assert len(batches) == 2  # 8 identities with >= 3 images, 4 per batch
    seen = set()
    for x, y in batches:
        assert len(y) == 12 and sorted(np.bincount(y.numpy(), minlength=10)[np.unique(y.numpy())]) == [3] * 4
        assert torch.equal(torch.as_tensor(identities)[x[:, 0, 0, 0].long()], y)  # images travel with their ids
        seen |= set(y.tolist())
    assert seen.isdisjoint({5, 9})
    # Two ranks: each gets half of every global batch.
    halves = [list(make_batches(data, 12, generator=torch.Generator().manual_seed(0), batch_sampler=sampler,
                                shard=(rank, 2))) for rank in (0, 1)]  # fmt: skip
    first = list(make_batches(data, 12, generator=torch.Generator().manual_seed(0), batch_sampler=sampler))
    assert torch.equal(torch.cat([halves[0][0][1], halves[1][0][1]]), first[0][1])
