"""Bad-input cases of `cnnlab faces`: people folders, faces options, galleries and runs of another task.

Training cases stop while loading (or before), with one line naming the file or the option; gallery cases name the
gallery file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.badinput.cases import Case


def train(*extra: str, data: str = "{tmp}/people") -> list[str]:
    return ["faces", "train", "--data", data, "--no-detect", "--epochs", "1", "--quiet", "--out", "{tmp}/out", *extra]


def people(count: int = 5, images: int = 3, extension: str = ".png"):
    def setup(tmp: Path) -> None:
        from tests.tasks.faces.conftest import write_people

        write_people(tmp / "people", people=count, images=images, size=16, extension=extension)

    return setup


def broken_image(tmp: Path) -> None:
    people()(tmp)
    (tmp / "people" / "person01" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


def person_in_two_splits(tmp: Path) -> None:
    from tests.tasks.faces.conftest import write_people

    for split in ("train", "test"):
        write_people(tmp / "people" / split, people=3, images=2, size=16)


def garbage_gallery(tmp: Path) -> None:
    (tmp / "g.db").write_bytes(b"not a database at all" * 10)


def foreign_gallery(tmp: Path) -> None:
    connection = sqlite3.connect(tmp / "g.db")
    connection.execute("create table songs (title text)")
    connection.commit()
    connection.close()


CASES = [
    Case("faces/data path missing", train(data="{tmp}/nobody"), "does not exist"),
    Case(
        "faces/too few people left to train",
        train("--test-people", "3", "--val-people", "1"),
        "leaves 1 to train on",
        setup=people(5),
    ),  # fmt: skip
    Case(
        "faces/fractional count",
        train("--test-people", "2.5"),
        "a count of people must be a whole number",
        setup=people(),
    ),  # fmt: skip
    Case("faces/broken image", train(), "img1.png: cannot decode image", setup=broken_image),
    Case("faces/person in two splits", train(), "is in both", setup=person_in_two_splits),
    Case("faces/unknown loss", train("--loss", "softmax"), "invalid choice: 'softmax'", exit_code=2, setup=people()),
    Case(
        "faces/image size text", train("--image-size", "big"), "--image-size must be a whole number", setup=people()
    ),  # fmt: skip
    Case(
        "faces/unknown task option",
        train("--task-options", "margin=0.3"),
        "did you mean 'task_options.face_margin'",
        setup=people(),
    ),  # fmt: skip
    Case(
        "faces/a classifier as the model",
        train("--model", "resnet18"),
        "the faces task trains face_embedder",
        setup=people(),
    ),  # fmt: skip
    Case("faces/no command", ["faces"], "faces needs a command", exit_code=2),
    Case(
        "faces/list a garbage gallery",
        ["faces", "list", "--gallery", "{tmp}/g.db"],
        "is not a cnnlab face gallery",
        setup=garbage_gallery,
    ),  # fmt: skip
    Case(
        "faces/list another app's database",
        ["faces", "list", "--gallery", "{tmp}/g.db"],
        "is not a cnnlab face gallery",
        setup=foreign_gallery,
    ),  # fmt: skip
    Case("faces/list a missing gallery", ["faces", "list", "--gallery", "{tmp}/none.db"], "none.db"),
    Case("faces/evaluate a classification run", ["faces", "evaluate", "{run}"], "not a faces run", needs_run=True),
    Case(
        "faces/identify with a classification run",
        ["faces", "identify", "--run", "{run}", "--gallery", "{tmp}/g.db", "{mnist}"],
        "not a faces run",
        needs_run=True,
    ),  # fmt: skip
]
