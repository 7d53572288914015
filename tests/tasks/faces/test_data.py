"""Face data: people are split, never their images; the crop path; one-line errors on bad folders."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.faces.data import load_face_data, split_people
from cnnlab.tasks.faces.task import FacesOptions
from tests.tasks.faces.conftest import write_people


def _config(data, **values):
    fields = {"data": str(data), "test_data": None, "channels": None, "seed": 0}
    return SimpleNamespace(**{**fields, **values})


def _names(split) -> set[str]:
    return {split.classes[i] for i in split.labels.tolist()}


def test_people_are_split_never_their_images(people_folder):
    options = FacesOptions(image_size=32, detect=False, test_people=2, val_people=2)
    data = load_face_data(_config(people_folder), options)
    train, val, test = _names(data.train), _names(data.val), _names(data.test)
    assert len(train) == 4 and len(val) == 2 and len(test) == 2
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == {f"person{i:02d}" for i in range(8)}
    # every image of a person stays with that person's split
    assert len(data.train) == 4 * 6 and len(data.val) == 2 * 6 and len(data.test) == 2 * 6
    assert data.classes == data.train.classes and data.train.labels.max() == 3
    assert data.train.images.shape[1:] == (3, 32, 32) and data.train.images.dtype == torch.uint8


def test_the_split_is_seeded_and_depends_on_the_seed():
    people = [f"p{i}" for i in range(40)]
    first, again, other = split_people(people, 10, 5, 0), split_people(people, 10, 5, 0), split_people(people, 10, 5, 1)
    assert first == again and first != other
    assert [len(first[k]) for k in ("train", "val", "test")] == [25, 5, 10]
    assert split_people(people, 0.25, 0.125, 0)["test"].__len__() == 10


def test_files_without_an_extension_are_read(tmp_path):
    folder = write_people(tmp_path / "people", people=4, images=3, extension="")
    data = load_face_data(_config(folder), FacesOptions(image_size=16, detect=False, test_people=1, val_people=1))
    assert len(data.train) + len(data.val) + len(data.test) == 12


def test_test_data_folder_gives_the_test_people(tmp_path):
    train = write_people(tmp_path / "train", people=5, images=3)
    test = tmp_path / "test"
    test.mkdir()
    (train / "person04").rename(test / "stranger")
    data = load_face_data(_config(train, test_data=str(test)), FacesOptions(image_size=16, detect=False, val_people=1))
    assert _names(data.test) == {"stranger"} and len(_names(data.val)) == 1 and len(_names(data.train)) == 3


def test_grey_folders_train_a_grey_model(olivetti):
    data = load_face_data(_config(olivetti), FacesOptions(image_size=48, detect=False, test_people=10, val_people=5))
    assert data.train.images.shape[1:] == (1, 48, 48)
    assert (len(data.train.classes), len(data.val.classes), len(data.test.classes)) == (25, 5, 10)
    assert len(data.train) == 250 and len(data.test) == 100


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test_people": 4, "val_people": 3}, "leaves 1 to train on"),
        ({"test_people": 2.5}, "a count of people must be a whole number"),
        ({"test_people": -1}, "must be a count"),
    ],
)
def test_splits_that_cannot_be_made_are_refused(people_folder, options, message):
    with pytest.raises((DataError, ConfigError), match=message):
        load_face_data(_config(people_folder), FacesOptions(image_size=16, detect=False, **options))


def test_bad_folders_get_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_face_data(_config(tmp_path / "nowhere"), FacesOptions(detect=False))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="one sub-folder of images per person"):
        load_face_data(_config(tmp_path / "file.txt"), FacesOptions(detect=False))


def test_a_broken_image_names_its_file_or_is_skipped(tmp_path):
    folder = write_people(tmp_path / "people", people=5, images=3)
    (folder / "person01" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    options = FacesOptions(image_size=16, detect=False, test_people=1, val_people=1)
    with pytest.raises(DataError, match="img1.png"):
        load_face_data(_config(folder), options)
    data = load_face_data(_config(folder), FacesOptions(**{**options.__dict__, "skip_invalid": True}))
    assert len(data.skipped) == 1 and "img1.png" in data.skipped[0]
    assert len(data.train) + len(data.val) + len(data.test) == 14


def test_photos_without_a_face_are_named(tmp_path):
    pytest.importorskip("cv2")
    folder = write_people(tmp_path / "people", people=4, images=2)
    with pytest.raises(DataError, match=r"img0.png: no face found \(use --no-detect"):
        load_face_data(_config(folder), FacesOptions(image_size=16, detect=True, test_people=1, val_people=1))


def test_person_in_two_splits_is_refused(tmp_path):
    for split in ("train", "test"):
        write_people(tmp_path / "data" / split, people=3, images=2)
    with pytest.raises(DataError, match="is in both (train/ and test/|test/ and train/)"):
        load_face_data(_config(tmp_path / "data"), FacesOptions(image_size=16, detect=False))


def test_photos_are_detected_and_cropped(tmp_path, olivetti):
    """Uncropped photos (a face on a larger, brighter background, no file extension) go through detection."""
    pytest.importorskip("cv2")
    import torch
    from PIL import Image

    from cnnlab.data.decode import decode_one, read_bytes
    from cnnlab.tasks.faces.data import CropSettings, crop_files

    face = decode_one(read_bytes(str(olivetti / "s1" / "1.pgm")), "1.pgm")
    canvas = torch.full((1, 260, 300), 200, dtype=torch.uint8)
    canvas[:, 70:182, 110:202] = face
    photo = tmp_path / "photo_without_extension"
    Image.fromarray(canvas[0].numpy()).save(photo, format="JPEG")
    crops, kept, skipped = crop_files([str(photo)], CropSettings(64, 3, detect=True, margin=0.2))
    assert kept == [0] and not skipped and crops.shape == (1, 3, 64, 64)
    # the crop is the face, not the flat background
    assert crops.float().std() > 20
