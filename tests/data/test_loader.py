"""make_batches: coverage of every image, shapes and dtypes, determinism, prefetching, streaming."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import ImageSet, build_augmenter, load_dataset, make_batches

from .conftest import write_class_folder

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture
def small_set() -> ImageSet:
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 4, 4).contiguous()
    return ImageSet(images, torch.arange(50) % 5, [str(i) for i in range(5)])


def test_shuffled_epoch_sees_every_image_once(small_set):
    batches = make_batches(small_set, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(batches) == 4
    seen = []
    for x, y in batches:
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.shape[1:] == (1, 4, 4)
        assert torch.equal(y, x[:, 0, 0, 0].long() % 5)
        seen += x[:, 0, 0, 0].tolist()
    assert sorted(seen) == list(range(50)) and seen != list(range(50))


def test_drop_last_and_order_without_shuffle(small_set):
    batches = make_batches(small_set, batch_size=16, drop_last=True)
    sizes = [len(x) for x, _ in batches]
    assert sizes == [16, 16, 16] and len(batches) == 3
    first, _ = next(iter(batches))
    assert first[:, 0, 0, 0].tolist() == list(range(16))


def test_same_seed_same_epoch_and_epochs_differ(small_set):
    augment = build_augmenter({"crop": 1, "flip": True})

    def epoch(generator):
        return [x for x, _ in make_batches(small_set, 8, shuffle=True, generator=generator, augment=augment)]

    generator = torch.Generator().manual_seed(3)
    first, second = epoch(generator), epoch(generator)
    replay = epoch(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, replay))
    assert not all(torch.equal(a, b) for a, b in zip(first, second))


def test_prefetch_thread_gives_the_same_batches(small_set):
    augment = build_augmenter({"rotate": 20, "mixup": 0.5})
    runs = []
    for workers in (0, 2):
        generator = torch.Generator().manual_seed(1)
        runs.append(list(make_batches(small_set, 16, True, generator, num_workers=workers, augment=augment)))
    for (x0, y0), (x1, y1) in zip(*runs):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert runs[0][0][1].shape == (16, 5)  # mixup: soft labels over the set's 5 classes


def test_prefetch_errors_reach_the_caller(small_set):
    def broken(x, y, generator):
        raise RuntimeError("augment failed")

    with pytest.raises(RuntimeError, match="augment failed"):
        list(make_batches(small_set, 16, num_workers=1, augment=broken))


def test_streaming_set_with_augmentation_is_seeded(tmp_path):
    write_class_folder(tmp_path / "set", {"a": 6, "b": 5}, size=(12, 12))
    stream = load_dataset(tmp_path / "set", val_split=0, max_in_memory_bytes=0).train
    augment = build_augmenter({"crop": 2, "flip": True, "rotate": 10, "cutmix": 1.0})

    def epoch(seed, workers=0):
        generator = torch.Generator().manual_seed(seed)
        return list(make_batches(stream, 4, True, generator, num_workers=workers, augment=augment))

    first, again = epoch(0), epoch(0)
    assert [x.shape for x, _ in first] == [(4, 3, 12, 12), (4, 3, 12, 12), (3, 3, 12, 12)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert first[0][1].shape == (4, 2) and first[0][0].dtype == torch.uint8
    with_worker = epoch(0, workers=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, with_worker))
