"""Face crops: the geometry (margin, squaring, black padding at the border) with a detector whose boxes are known,
and OpenCV's Haar cascade on real faces (Olivetti, from ../shared) and on an image without one."""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.faces.detect import FaceBox, HaarFaceDetector, crop_face, crop_faces

OLIVETTI = Path(__file__).parents[3] / ".." / "shared" / "data" / "faces" / "olivetti" / "att_faces.zip"


class FixedDetector:
    """Finds the given boxes in every image whose first pixel is not 255."""

    def __init__(self, *boxes: tuple[float, float, float, float]) -> None:
        self.boxes = [FaceBox(*box) for box in boxes]

    def detect(self, image: torch.Tensor) -> list[FaceBox]:
        return [] if image[0, 0, 0] == 255 else list(self.boxes)


def coordinates(height: int = 100, width: int = 200) -> torch.Tensor:
    """uint8 (3, H, W): channel 0 is each pixel's row, 1 its column, 2 is 7 (0 marks the black padding)."""
    rows = torch.arange(height, dtype=torch.uint8)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.uint8)[None, :].expand(height, width)
    return torch.stack([rows, cols, torch.full_like(rows, 7)])


def assert_window(crop: torch.Tensor, top: int, left: int) -> None:
    height, width = crop.shape[-2:]
    assert crop[0].tolist() == [[top + r] * width for r in range(height)]
    assert crop[1].tolist() == [list(range(left, left + width))] * height
    assert (crop[2] == 7).all()


# -- geometry -----------------------------------------------------------------------------------------------------
def test_margin_widens_the_box_on_each_side():
    # 40 x 40 box centred at (70, 40), 25 % of 40 = 10 more on each side: x 40..100, y 10..70.
    crop = crop_face(coordinates(), FixedDetector((50, 20, 90, 60)), (60, 60), margin=0.25)
    assert crop.shape == (3, 60, 60) and crop.dtype == torch.uint8
    assert_window(crop, top=10, left=40)


def test_a_tall_box_is_made_square_about_its_centre():
    # 40 wide x 60 tall, centre (70, 50): a 60 x 60 square at x 40..100, y 20..80.
    assert_window(crop_face(coordinates(), FixedDetector((50, 20, 90, 80)), (60, 60), margin=0.0), top=20, left=40)


def test_the_crop_takes_the_aspect_of_a_non_square_size():
    # 40 x 40 box, size (80, 40): grown to 40 wide x 80 tall about its centre (70, 40): x 50..90, y 0..80.
    assert_window(crop_face(coordinates(), FixedDetector((50, 20, 90, 60)), (80, 40), margin=0.0), top=0, left=50)


def test_the_crop_is_padded_black_past_the_border():
    # Box (0, 0)-(40, 40) with margin 0.25: x and y -10..50, so 10 black rows on top and 10 black columns left.
    crop = crop_face(coordinates(), FixedDetector((0, 0, 40, 40)), (60, 60), margin=0.25)
    assert (crop[:, :10] == 0).all() and (crop[:, :, :10] == 0).all()
    assert_window(crop[:, 10:, 10:], top=0, left=0)
    # And past the bottom-right corner of a 100 x 200 image: x 170..210, y 80..120.
    crop = crop_face(coordinates(), FixedDetector((170, 80, 210, 120)), (40, 40), margin=0.0)
    assert (crop[:, 20:] == 0).all() and (crop[:, :, 30:] == 0).all()
    assert_window(crop[:, :20, :30], top=80, left=170)


def test_the_largest_face_is_cropped_and_resized():
    detector = FixedDetector((0, 0, 10, 10), (100, 20, 160, 80), (150, 0, 170, 20))
    crop = crop_face(coordinates(), detector, (60, 60), margin=0.0)
    assert_window(crop, top=20, left=100)
    small = crop_face(coordinates(), detector, (30, 30), margin=0.0)
    assert small.shape == (3, 30, 30) and small.dtype == torch.uint8
    assert abs(int(small[0, 0, 0]) - 20) <= 1 and abs(int(small[1, -1, -1]) - 159) <= 1  # corners kept


def test_without_a_detector_the_whole_image_is_resized():
    image = coordinates(112, 92)
    assert crop_face(image, None, (112, 92)) is image
    crop = crop_face(image, None, (64, 64))
    assert crop.shape == (3, 64, 64) and crop.dtype == torch.uint8
    assert int(crop[0, -1, 0]) >= 108 and int(crop[1, 0, -1]) >= 88  # stretched, nothing cut away


def test_no_face_names_the_file():
    blank = torch.full((3, 50, 50), 255, dtype=torch.uint8)
    with pytest.raises(DataError, match=r"^photo\.jpg: no face found \(use --no-detect if the images are already"):
        crop_face(blank, FixedDetector((0, 0, 10, 10)), (32, 32), path="photo.jpg")


def test_crop_faces_skips_or_stops_at_images_without_a_face():
    face, blank = coordinates(), torch.full((3, 100, 200), 255, dtype=torch.uint8)
    detector, paths = FixedDetector((50, 20, 90, 60)), ["a.png", "b.png", "c.png"]
    crops = crop_faces([face, blank, face], paths, detector, (40, 40), skip_missing=True)
    assert crops.images.shape == (2, 3, 40, 40) and crops.kept == [0, 2] and crops.missing == ["b.png"]
    with pytest.raises(DataError, match=r"^b\.png: no face found"):
        crop_faces([face, blank, face], paths, detector, (40, 40))
    none = crop_faces([blank], ["b.png"], detector, (40, 40), skip_missing=True)
    assert none.images.shape == (0, 3, 40, 40) and none.kept == [] and none.missing == ["b.png"]


# -- OpenCV -------------------------------------------------------------------------------------------------------
def test_missing_or_too_new_opencv_is_a_config_error_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(ConfigError, match=r'pip install "opencv-python-headless<5" \(or pass --no-detect'):
        HaarFaceDetector()
    opencv5 = types.ModuleType("cv2")
    opencv5.__version__ = "5.0.0"
    monkeypatch.setitem(sys.modules, "cv2", opencv5)
    with pytest.raises(ConfigError, match=r"OpenCV 5\.0\.0 ships no Haar cascades.*opencv-python-headless<5"):
        HaarFaceDetector()


def olivetti_faces(*names: str) -> list[torch.Tensor]:
    """uint8 (1, 112, 92) grey faces from the zip, read in memory."""
    if not OLIVETTI.is_file():
        pytest.skip("the Olivetti faces are not in ../shared/data/faces/olivetti")
    with zipfile.ZipFile(OLIVETTI) as archive:
        arrays = [np.asarray(Image.open(io.BytesIO(archive.read(f"att_faces/{name}.pgm")))) for name in names]
    return [torch.from_numpy(array.copy())[None] for array in arrays]


def in_background(face: torch.Tensor, border: int = 56) -> torch.Tensor:
    """The face on a canvas `border` pixels larger on each side, its edge pixels repeated outwards.

    Olivetti's crops are tight: the cascade misses about 1 in 8 of them as they are (its window wants some
    context around a face), and finds all 400 once 28 pixels of edge are added on each side.
    """
    return F.pad(face[None].float(), (border,) * 4, mode="replicate")[0].to(torch.uint8)


def test_haar_finds_real_faces_where_they_are():
    pytest.importorskip("cv2")
    detector = HaarFaceDetector()
    for face in olivetti_faces("s1/1", "s2/1", "s3/5", "s4/1", "s5/3"):
        canvas = in_background(face).expand(3, -1, -1).contiguous()  # RGB, like most photos
        boxes = detector.detect(canvas)
        assert boxes, "the Haar cascade missed an Olivetti face"
        box = max(boxes, key=lambda b: b.area)
        centre_x, centre_y = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        assert 56 < centre_x < 56 + 92 and 56 < centre_y < 56 + 112  # inside the pasted face
        assert 30 <= box.x2 - box.x1 <= 112 and box.score >= 5
        assert crop_face(canvas, detector, (64, 64)).shape == (3, 64, 64)


def test_haar_on_a_large_photo_reports_boxes_in_its_own_pixels():
    pytest.importorskip("cv2")
    canvas = in_background(olivetti_faces("s1/1")[0])  # (1, 224, 204)
    large = F.interpolate(canvas[None].float(), scale_factor=8.0, mode="bilinear")[0].to(torch.uint8)
    detector = HaarFaceDetector(max_side=512)  # searched at a quarter of its size
    small, big = detector.detect(canvas)[0], detector.detect(large)[0]
    for a, b in zip((small.x1, small.y1, small.x2, small.y2), (big.x1, big.y1, big.x2, big.y2)):
        assert b == pytest.approx(8 * a, abs=40)


def test_haar_finds_no_face_in_an_image_without_one():
    pytest.importorskip("cv2")
    ramp = torch.linspace(0, 255, 300)[None, :].expand(200, 300)
    image = torch.stack([ramp, ramp.flip(1), torch.full_like(ramp, 90)]).to(torch.uint8)  # colour ramps
    image[:, 50:120, 100:180] = 30  # a dark rectangle
    with pytest.raises(DataError, match=r"^holiday/photo\.jpg: no face found"):
        crop_face(image, HaarFaceDetector(), (64, 64), path="holiday/photo.jpg")


def test_haar_detector_pickles_for_loader_workers():
    pytest.importorskip("cv2")
    detector = pickle.loads(pickle.dumps(HaarFaceDetector(min_size=40)))
    assert detector.min_size == 40
    assert detector.detect(in_background(olivetti_faces("s1/1")[0]))
