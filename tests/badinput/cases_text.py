"""Bad-input cases for the text task: files that are not what `cnnlab text train` reads, options that do not fit
the data or the variant, and `cnnlab text predict` given the wrong run or sentence. Each fails with one line
naming the file (and line) or the flag."""

from __future__ import annotations

from pathlib import Path

from tests.badinput.cases import Case

LINES = "sport the striker scored a goal\nfood a spicy pasta recipe\ntech my laptop battery died\n" * 6


def _train(data: str, *extra: str) -> list[str]:
    return ["text", "train", "--data", data, "--epochs", "1", "--quiet", "--out", "{tmp}/out", *extra]


def write(name: str, content: str | bytes):
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def both(*setups):
    def setup(tmp: Path) -> None:
        for one in setups:
            one(tmp)

    return setup


CASES = [
    Case("text/missing data", _train("{tmp}/nowhere.txt"), "nowhere.txt"),
    Case("text/empty file", _train("{tmp}/s.txt"), "s.txt", setup=write("s.txt", "")),
    Case(
        "text/empty line in the middle",
        _train("{tmp}/s.txt"),
        "s.txt line 2: empty line",
        setup=write("s.txt", "sport a goal\n\nfood pasta\n"),
    ),
    Case(
        "text/label without a sentence",
        _train("{tmp}/s.txt"),
        "s.txt line 2",
        setup=write("s.txt", "sport a goal\nfood\ntech laptop\n"),
    ),
    Case(
        "text/not UTF-8",
        _train("{tmp}/s.txt"),
        "s.txt line 2: not UTF-8 text (byte 0xe9); pass --encoding latin-1",
        setup=write("s.txt", b"sport a goal\nfood caf\xe9 au lait\n"),
    ),
    Case(
        "text/unknown label column",
        _train("{tmp}/s.csv", "--label-column", "stars"),
        "s.csv",
        setup=write("s.csv", "text,label\na goal,sport\npasta,food\n"),
    ),
    Case(
        "text/csv without a text column",
        _train("{tmp}/s.csv"),
        "s.csv",
        setup=write("s.csv", "words,label\na goal,sport\npasta,food\n"),
    ),
    Case(
        "text/one class only",
        _train("{tmp}/s.txt"),
        "one class only",
        setup=write("s.txt", "sport a goal\nsport a match\n" * 5),
    ),
    Case(
        "text/cv on data with a test split",
        _train("{tmp}/d", "--cv", "3"),
        "the data has its own test split; --cv is for data without one",
        setup=both(write("d/x.train", LINES), write("d/x.test", LINES)),
    ),
    Case("text/cv of one fold", _train("{tmp}/s.txt", "--cv", "1"), "--cv must be", setup=write("s.txt", LINES)),
    Case("text/cv not a number", _train("{tmp}/s.txt", "--cv", "ten"), "--cv must be", setup=write("s.txt", LINES)),
    Case(
        "text/static without vectors",
        _train("{tmp}/s.txt", "--variant", "static"),
        "pass --vectors FILE",
        setup=write("s.txt", LINES),
    ),
    Case(
        "text/rand with vectors",
        _train("{tmp}/s.txt", "--vectors", "{tmp}/v.txt"),
        "rand learns its vectors from scratch",
        setup=both(write("s.txt", LINES), write("v.txt", "goal 0.1 0.2\npasta 0.3 0.4\n")),
    ),
    Case(
        "text/ragged vector file",
        _train("{tmp}/s.txt", "--variant", "static", "--vectors", "{tmp}/v.txt"),
        "v.txt line 2",
        setup=both(write("s.txt", LINES), write("v.txt", "goal 0.1 0.2\npasta 0.3\n")),
    ),
    Case(
        "text/an image model",
        _train("{tmp}/s.txt", "--model", "lenet5"),
        "the text task trains kim_cnn or char_cnn",
        setup=write("s.txt", LINES),
    ),
    Case(
        "text/char_cnn on words",
        _train("{tmp}/s.txt", "--model", "char_cnn"),
        "char_cnn reads characters; add --tokenizer chars",
        setup=write("s.txt", LINES),
    ),
    Case(
        "text/image augmentation",
        _train("{tmp}/s.txt", "--augment", "flip"),
        "image augmentations do not apply to sentences",
        setup=write("s.txt", LINES),
    ),
    Case("text/min-freq not a number", _train("{tmp}/s.txt", "--min-freq", "x"), "--min-freq must be a whole number"),
    Case(
        "text/predict on an image run",
        ["text", "predict", "{run}", "a sentence"],
        "not a text run",
        needs_run=True,
    ),
    Case(
        "text/predict on a cross-validation folder",
        ["text", "predict", "{tmp}/cv", "a sentence"],
        "a cross-validation folder; use one fold's run",
        setup=write("cv/cv.json", '{"folds": 10}'),
    ),
    Case("text/predict without sentences", ["text", "predict", "{run}"], "needs sentences", needs_run=True),
    Case(
        "text/predict sentence file not UTF-8",
        ["text", "predict", "{run}", "--file", "{tmp}/q.txt"],
        "q.txt line 1: not UTF-8",
        setup=write("q.txt", b"caf\xe9\n"),
        needs_run=True,
    ),
    Case("text/no command", ["text"], "text needs a command", exit_code=2),
]
