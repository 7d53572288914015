"""Detection augmentation: boxes stay on the pixels they cover through every geometric step; config; determinism."""

from __future__ import annotations

import time

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.tasks.detection.augment import DetectionAugment, DetectionAugmentSpec, build_detection_augment

SIZE, CELL, BATCH = 96, 32, 8
IDS = BATCH * 3  # one id per box of the batch: its label, and its colour


def _colour(box_id: int) -> tuple[int, int, int]:
    """Channel 0 is full white; channel 1 / channel 0 encodes the id. Blending with the black background (any
    interpolation, resize, antialias) scales all channels alike, so the ratio survives and names the box."""
    return 255, round(255 * (box_id + 1) / (IDS + 1)), 0


def painted_batch(seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """RGB images, black except one solid rectangle per box, exactly on the box; 3 boxes per image in separate
    cells of a 3x3 grid (gaps of >= 8 px, so no interpolation mixes two boxes). Labels are the box ids."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(BATCH, 3, SIZE, SIZE, dtype=torch.uint8)
    targets = []
    for index in range(BATCH):
        cells = torch.randperm(9, generator=generator)[:3].tolist()
        boxes, labels = [], []
        for k, cell in enumerate(cells):
            box_id = index * 3 + k
            row, col = divmod(cell, 3)
            w, h = torch.randint(10, CELL - 8, (2,), generator=generator).tolist()
            x1 = col * CELL + 4 + int(torch.randint(0, CELL - 8 - w + 1, (1,), generator=generator))
            y1 = row * CELL + 4 + int(torch.randint(0, CELL - 8 - h + 1, (1,), generator=generator))
            images[index, :, y1 : y1 + h, x1 : x1 + w] = torch.tensor(_colour(box_id), dtype=torch.uint8).view(3, 1, 1)
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(box_id)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "labels": torch.tensor(labels),
                "file": f"img{index}.png",
                "orig_size": (SIZE, SIZE),
            }
        )
    return images, targets


def _ids(image: torch.Tensor) -> torch.Tensor:
    """Per pixel: the box id its colour encodes, or -1 for background / faint interpolation borders."""
    white, code = image[0].float(), image[1].float()
    ids = (code / white.clamp(min=1) * (IDS + 1)).round().long() - 1
    return torch.where(white > 100, ids, torch.full_like(ids, -1))


def _region(box: list[float], grow: float, size: int) -> tuple[slice, slice]:
    x1, y1, x2, y2 = box
    rows = slice(max(0, int(y1 - grow)), min(size, int(round(y2 + grow))))
    cols = slice(max(0, int(x1 - grow)), min(size, int(round(x2 + grow))))
    return rows, cols


def check_boxes_cover_their_pixels(
    images: torch.Tensor, targets: list[dict], border: float = 2.0, cut_at_edge: bool = True
) -> int:
    """Each kept box: its interior (shrunk by `border`) is almost all its own colour, and every pixel of its colour
    lies inside it (grown by `border`). A colour whose box was dropped must touch the image edge (it was cut off, not
    lost while fully visible) — unless `cut_at_edge` is False: a crop or mosaic followed by a zoom-out or shift moves
    the edge that cut a box inward. Returns the number of boxes checked."""
    checked = 0
    for image, target in zip(images, targets):
        size = image.shape[-1]
        ids = _ids(image)
        boxes, labels = target["boxes"], target["labels"]
        assert boxes.dtype == torch.float32 and labels.dtype == torch.int64 and len(boxes) == len(labels)
        assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()), boxes
        assert bool(((boxes[:, 2:] - boxes[:, :2]) >= 2).all()), boxes
        for box_id in ids.unique().tolist():
            if box_id < 0:
                continue
            own = ids == box_id
            covered = torch.zeros_like(own)
            for box in boxes[labels == box_id].tolist():
                rows, cols = _region(box, border, size)
                covered[rows, cols] = True
            outside = own & ~covered
            if outside.any() and cut_at_edge:
                ys, xs = outside.nonzero(as_tuple=True)
                near_edge = min(int(ys.min()), int(xs.min()), size - 1 - int(ys.max()), size - 1 - int(xs.max()))
                assert near_edge <= border, f"id {box_id}: {int(outside.sum())} px outside its boxes, not cut off"
        for box, label in zip(boxes.tolist(), labels.tolist()):
            x1, y1, x2, y2 = box
            if min(x2 - x1, y2 - y1) <= 2 * border + 1:
                continue
            inner = ids[int(y1 + border + 0.999) : int(y2 - border), int(x1 + border + 0.999) : int(x2 - border)]
            if inner.numel() < 4:
                continue
            assert (inner == label).float().mean() >= 0.97, f"box {box} label {label} holds other pixels"
            checked += 1
    return checked


GEOMETRIC = [
    {"flip": True},
    {"vflip": True},
    {"scale": 0.3},
    {"translate": 0.3},
    {"crop": 1.0},
    {"mosaic": 1.0},
    {"flip": True, "vflip": True, "scale": 0.3, "translate": 0.2, "crop": 0.5, "mosaic": 0.5},
]


@pytest.mark.parametrize("config", GEOMETRIC, ids=lambda c: "+".join(c))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_cover_the_same_pixels_after_augmenting(config, seed):
    images, targets = painted_batch(seed)
    check_boxes_cover_their_pixels(images, targets)  # the helper holds on the input itself
    augment = build_detection_augment(config)
    out, new = augment(images, targets, torch.Generator().manual_seed(seed))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert [t["file"] for t in new] == [t["file"] for t in targets]
    assert all(t["orig_size"] == (SIZE, SIZE) for t in new)
    moves_cuts = bool({"crop", "mosaic"} & set(config)) and bool({"scale", "translate"} & set(config))
    checked = check_boxes_cover_their_pixels(out, new, cut_at_edge=not moves_cuts)
    assert checked >= len(new)  # on average at least one box per image survives


def test_flip_moves_boxes_exactly():
    images, targets = painted_batch(0)
    out, new = DetectionAugment(DetectionAugmentSpec(flip=True))(images, targets, torch.Generator().manual_seed(0))
    flipped = moved = 0
    for before, after, image, original in zip(targets, new, out, images):
        if torch.equal(image, original.flip(-1)):
            expected = before["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor(
                [SIZE, 0, SIZE, 0]
            )
            assert torch.equal(after["boxes"], expected)
            flipped += 1
        else:
            assert torch.equal(image, original) and torch.equal(after["boxes"], before["boxes"])
            moved += 1
        assert torch.equal(after["labels"], before["labels"])
    assert flipped and moved


def test_scale_and_translate_keep_boxes_within_two_pixels_of_the_paint():
    """Boxes in the middle never leave the image, so every box survives and fits its paint tightly."""
    images = torch.zeros(BATCH, 3, SIZE, SIZE, dtype=torch.uint8)
    targets = []
    for index in range(BATCH):
        x1, y1, w, h = 36 + index % 3, 38, 20 + index, 18
        images[index, :, y1 : y1 + h, x1 : x1 + w] = torch.tensor(_colour(index), dtype=torch.uint8).view(3, 1, 1)
        targets.append(
            {"boxes": torch.tensor([[x1, y1, x1 + w, y1 + h]], dtype=torch.float32), "labels": torch.tensor([index])}
        )
    augment = build_detection_augment({"scale": 0.3, "translate": 0.15})
    out, new = augment(images, targets, torch.Generator().manual_seed(5))
    for image, target in zip(out, new):
        assert len(target["boxes"]) == 1
        ys, xs = (_ids(image) >= 0).nonzero(as_tuple=True)
        paint = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert (target["boxes"][0] - paint).abs().max() <= 1.5, (target["boxes"][0], paint)
    assert check_boxes_cover_their_pixels(out, new, border=1.5) == BATCH


def test_boxes_cut_off_mostly_are_dropped_with_their_labels():
    images = torch.zeros(2, 1, 64, 64, dtype=torch.uint8)
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 4, 30], [20, 20, 40, 40]]), "labels": torch.tensor([7, 3])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    augment = DetectionAugment(DetectionAugmentSpec(translate=0.2), min_box_size=2)
    for seed in range(10):
        _, new = augment(images, targets, torch.Generator().manual_seed(seed))
        assert new[1]["boxes"].shape == (0, 4) and new[1]["labels"].shape == (0,)
        assert len(new[0]["boxes"]) == len(new[0]["labels"])
        assert 3 in new[0]["labels"].tolist()  # the middle box always stays
        widths = new[0]["boxes"][:, 2] - new[0]["boxes"][:, 0]
        assert bool((widths >= 2).all())


def test_jitter_changes_pixels_not_boxes():
    images, targets = painted_batch(0)
    out, new = build_detection_augment({"jitter": 0.5})(images, targets, torch.Generator().manual_seed(0))
    assert not torch.equal(out, images)
    for before, after in zip(targets, new):
        assert torch.equal(before["boxes"], after["boxes"]) and torch.equal(before["labels"], after["labels"])
    grey = images[:, :1].clone()
    out_grey, _ = build_detection_augment({"jitter": 0.5})(grey, targets, torch.Generator().manual_seed(0))
    assert out_grey.shape == grey.shape  # one channel: brightness and contrast only


def test_same_generator_same_batch_and_global_rng_untouched():
    images, targets = painted_batch(1)
    augment = build_detection_augment(
        {"flip": True, "scale": 0.2, "translate": 0.1, "jitter": 0.3, "crop": 0.5, "mosaic": 0.5}
    )
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = augment(images, targets, torch.Generator().manual_seed(9))
    assert torch.equal(torch.get_rng_state(), state)
    second = augment(images, targets, torch.Generator().manual_seed(9))
    other = augment(images, targets, torch.Generator().manual_seed(10))
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(first[0], other[0])


def test_a_generator_advances_so_batches_differ():
    images, targets = painted_batch(0)
    augment = build_detection_augment({"scale": 0.2})
    generator = torch.Generator().manual_seed(0)
    assert not torch.equal(augment(images, targets, generator)[0], augment(images, targets, generator)[0])


def test_empty_targets_and_float_images():
    images = torch.rand(3, 3, 32, 32)
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)} for _ in range(3)]
    augment = build_detection_augment(
        {"flip": True, "vflip": True, "scale": 0.2, "crop": 1.0, "mosaic": 1.0, "jitter": 0.2}
    )
    out, new = augment(images, targets, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert all(t["boxes"].shape == (0, 4) for t in new)


def test_unknown_key_is_refused_with_the_supported_list():
    message = (
        "augment.rotate is not supported for detection (supported: flip, vflip, scale, translate, jitter, crop, mosaic)"
    )
    with pytest.raises(ConfigError) as error:
        DetectionAugmentSpec.from_mapping({"rotate": 10})
    assert str(error.value) == message


@pytest.mark.parametrize(
    "values, key",
    [
        ({"scale": 1.0}, "scale"),
        ({"translate": -0.1}, "translate"),
        ({"crop": 2}, "crop"),
        ({"mosaic": "lots"}, "mosaic"),
        ({"jitter": float("nan")}, "jitter"),
        ({"flip": "maybe"}, "flip"),
    ],
)
def test_bad_values_name_the_field_on_one_line(values, key):
    with pytest.raises(ConfigError, match=rf"augment\.{key}") as error:
        DetectionAugmentSpec.from_mapping(values)
    assert "\n" not in str(error.value)


def test_flags_and_strings_and_all_off():
    spec = DetectionAugmentSpec.from_mapping("flip,scale=0.25,mosaic")
    assert spec.flip and spec.scale == 0.25 and spec.mosaic == 0.5 and not spec.vflip
    assert spec.to_dict() == {"flip": True, "scale": 0.25, "mosaic": 0.5}
    assert DetectionAugmentSpec.from_mapping({"vflip": "yes"}).vflip is True
    assert build_detection_augment(None) is None
    assert build_detection_augment({}) is None
    assert build_detection_augment({"flip": False, "scale": 0, "mosaic": 0.0}) is None
    assert isinstance(build_detection_augment({"crop": 0.3}), DetectionAugment)


def test_speed_of_a_typical_batch(capsys):
    """64 grey 128x128 images through flip + scale + translate + jitter: well under 50 ms on one core (a loose
    bound here, the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = torch.randint(0, 256, (64, 1, 128, 128), dtype=torch.uint8)
        boxes = torch.tensor([[10.0, 10, 40, 40], [60, 50, 100, 90], [80, 10, 120, 30]])
        targets = [{"boxes": boxes, "labels": torch.tensor([1, 2, 3])} for _ in range(64)]
        augment = build_detection_augment({"flip": True, "scale": 0.2, "translate": 0.1, "jitter": 0.4})
        generator = torch.Generator().manual_seed(0)
        augment(images, targets, generator)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            augment(images, targets, generator)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 0.25
