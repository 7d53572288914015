"""Finding the face in a photo and cropping it: the first step of training, enroll, identify and verify.

The detector is an interface (`FaceDetector`): anything with `detect(image) -> list[FaceBox]` plugs in, so the
detection task's grid detector, trained on faces, can replace the default later. The default, `HaarFaceDetector`,
is OpenCV's frontal-face Haar cascade (Viola & Jones 2001), which ships inside `opencv-python-headless` and so
works offline with no weights to download. OpenCV 5 no longer ships the cascades: cnnlab needs OpenCV < 5.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from cnnlab.errors import ConfigError, DataError

OPENCV_HINT = 'pip install "opencv-python-headless<5" (or pass --no-detect for images that are already cropped faces)'
NO_FACE_HINT = "use --no-detect if the images are already cropped faces"


@dataclass(frozen=True)
class FaceBox:
    """A face in image pixels, x2/y2 exclusive (a box of the whole 100-pixel-wide image has x1 0, x2 100)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0  # the detector's confidence; Haar: how many overlapping detections were merged into it

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)


class FaceDetector(Protocol):
    """Finds faces in one image."""

    def detect(self, image: torch.Tensor) -> list[FaceBox]:
        """The faces in a uint8 (C, H, W) image, in any order; an empty list when there is none."""
        ...


def _load_cascade():
    try:
        import cv2
    except ImportError:
        raise ConfigError(f"face detection needs OpenCV: {OPENCV_HINT}") from None
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not folder:
        raise ConfigError(f"OpenCV {cv2.__version__} ships no Haar cascades (OpenCV 5 dropped them): {OPENCV_HINT}")
    cascade = cv2.CascadeClassifier(folder + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise ConfigError(f"OpenCV's face cascade in {folder} does not load: {OPENCV_HINT}")
    return cv2, cascade


def grey_array(image: torch.Tensor):
    """uint8 (C, H, W) tensor -> (H, W) numpy grey array (alpha dropped; RGB by OpenCV's luma weights)."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise TypeError(f"expected a uint8 (C, H, W) image, got {image.dtype} {tuple(image.shape)}")
    import cv2

    if image.shape[0] < 3:
        return image[0].contiguous().numpy()
    return cv2.cvtColor(image[:3].permute(1, 2, 0).contiguous().numpy(), cv2.COLOR_RGB2GRAY)


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, the default detector: offline; measured on this project's 2-core machine,
    ~35 ms for a 200 x 220 image, 0.3-0.8 s for a 4000 x 3000 photo searched at 1024 x 768 (15 s at full size).

    The image is made grey (the cascade was trained on grey faces) and histogram-equalised, as OpenCV's own
    face-detection sample does: the cascade's features are differences of box sums, and spreading the grey
    levels keeps them strong on dark, bright or low-contrast photos. Photos larger than `max_side` are searched
    at that size, since a 12-megapixel photo takes seconds at full size: a face narrower than min_size / max_side
    of the photo's longest side (30 / 1024, 3 %) is then missed. Boxes are given in the original pixels.

    Args:
        min_size: smallest face searched for, in pixels of the searched image (the cascade's window is 24).
        scale_factor: step between the searched face sizes; smaller finds more faces, slower.
        min_neighbors: overlapping detections needed to keep a face; higher means fewer false faces.
        max_side: photos are shrunk to this longest side for the search; None searches at full size.

    Raises:
        ConfigError: OpenCV is missing, or is version 5 or later (no cascades), with the command that fixes it.
    """

    def __init__(
        self, min_size: int = 30, scale_factor: float = 1.1, min_neighbors: int = 5, max_side: int | None = 1024
    ) -> None:
        if min_size < 1 or scale_factor <= 1.0 or min_neighbors < 0 or (max_side is not None and max_side < 32):
            raise ConfigError(
                f"Haar detector needs min_size >= 1, scale_factor > 1, min_neighbors >= 0 and max_side >= 32, got "
                f"{min_size}, {scale_factor}, {min_neighbors}, {max_side}"
            )
        self.min_size, self.scale_factor = min_size, scale_factor
        self.min_neighbors, self.max_side = min_neighbors, max_side
        self._cv2, self._cascade = _load_cascade()  # now, so a missing OpenCV stops a command before any work
        self._lock = threading.Lock()  # OpenCV does not promise a cascade is thread-safe

    def detect(self, image: torch.Tensor) -> list[FaceBox]:
        grey = grey_array(image)
        height, width = grey.shape
        shrink = 1.0 if self.max_side is None else min(1.0, self.max_side / max(height, width))
        if shrink < 1.0:
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            grey = self._cv2.resize(grey, size, interpolation=self._cv2.INTER_AREA)
        grey = self._cv2.equalizeHist(grey)
        with self._lock:
            boxes, neighbours = self._cascade.detectMultiScale2(
                grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(self.min_size,) * 2
            )
        return [
            FaceBox(float(x / shrink), float(y / shrink), float((x + w) / shrink), float((y + h) / shrink), float(n))
            for (x, y, w, h), n in zip(boxes, neighbours)
        ]

    def __getstate__(self) -> dict:
        """Picklable (for data-loader workers): the cascade and the lock are rebuilt on unpickling."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_cv2", "_cascade", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cv2, self._cascade = _load_cascade()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"HaarFaceDetector(min_size={self.min_size}, scale_factor={self.scale_factor}, "
            f"min_neighbors={self.min_neighbors}, max_side={self.max_side})"
        )


def crop_box(box: FaceBox, margin: float, aspect: float) -> tuple[int, int, int, int]:
    """The crop (left, top, right, bottom) in integer pixels, possibly outside the image: `box` widened by `margin`
    of its width and height on each side, then grown about its centre to height/width = `aspect` (1: a square)."""
    width = (box.x2 - box.x1) * (1 + 2 * margin)
    height = (box.y2 - box.y1) * (1 + 2 * margin)
    width, height = max(width, height / aspect), max(height, width * aspect)
    centre_x, centre_y = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    left, top = round(centre_x - width / 2), round(centre_y - height / 2)
    return left, top, left + max(1, round(width)), top + max(1, round(height))


def cut_padded(image: torch.Tensor, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
    """image[:, top:bottom, left:right], with black (0) where the crop passes the image's border."""
    height, width = image.shape[-2:]
    if left >= width or top >= height or right <= 0 or bottom <= 0:
        return torch.zeros((image.shape[0], bottom - top, right - left), dtype=image.dtype)
    inside = image[:, max(0, top) : min(bottom, height), max(0, left) : min(right, width)]
    pad = (max(0, -left), max(0, right - width), max(0, -top), max(0, bottom - height))
    return F.pad(inside, pad) if any(pad) else inside


def crop_face(
    image: torch.Tensor,
    detector: FaceDetector | None,
    size: tuple[int, int],
    margin: float = 0.2,
    path: str = "image",
) -> torch.Tensor:
    """The largest face of a uint8 (C, H, W) image as a uint8 (C, h, w) crop, `size` = (h, w).

    The face's box is widened by `margin` of its size on each side (so the crop keeps the chin, hair and ears the
    network learns from) and grown about its centre to the aspect of `size` (square for a square size), so that
    the resize does not stretch the face. Where that passes the image's border it is padded with black rather
    than clipped or shifted: clipping would stretch the face, shifting would move it off centre, and either
    would make crops near a border look unlike the others. The crop is resized with antialiasing.

    With `detector` None the image is taken as a face crop already (Olivetti, LFW crops) and the whole image is
    resized to `size`, stretched if its aspect differs (92 x 112 Olivetti faces to 112 x 112): nothing of the
    face is cut away, and since every image of such a set shares one shape, all are stretched alike.

    Raises:
        DataError: no face found, naming `path`.
    """
    if detector is not None:
        boxes = detector.detect(image)
        if not boxes:
            raise DataError(f"{path}: no face found ({NO_FACE_HINT})")
        largest = max(boxes, key=lambda box: box.area)
        image = cut_padded(image, *crop_box(largest, margin, size[0] / size[1]))
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), antialias=True)


@dataclass(frozen=True)
class FaceCrops:
    """`images` (N, C, h, w) uint8: the crops of the inputs at `kept` (indices into them); `missing`: the paths of
    the inputs without a face."""

    images: torch.Tensor
    kept: list[int]
    missing: list[str]


def crop_faces(
    images: Sequence[torch.Tensor],
    paths: Sequence[str],
    detector: FaceDetector | None,
    size: tuple[int, int],
    margin: float = 0.2,
    skip_missing: bool = False,
) -> FaceCrops:
    """`crop_face` over many images (one channel count); with `skip_missing` an image without a face is listed in
    `missing` instead of stopping with a DataError, and `kept` says which inputs the crops are of.

    Raises:
        DataError: an image without a face (unless `skip_missing`), naming its path.
    """
    if len(images) != len(paths):
        raise ValueError(f"{len(images)} images but {len(paths)} paths")
    crops, kept, missing = [], [], []
    for index, (image, path) in enumerate(zip(images, paths)):
        try:
            crops.append(crop_face(image, detector, size, margin, path))
        except DataError:
            if not skip_missing:
                raise
            missing.append(path)
            continue
        kept.append(index)
    channels = images[0].shape[0] if len(images) else 3
    stacked = torch.stack(crops) if crops else torch.empty((0, channels, *size), dtype=torch.uint8)
    return FaceCrops(stacked, kept, missing)
