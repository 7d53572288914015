"""Labelled text from the layouts people ship: label-prefixed lines, a file per class, CSV/TSV, a folder per class, and
any of these split into train/dev/test files or folders.

Lines are split on "\\n" only: MR holds the byte 0x85 (latin-1 NEL), which str.splitlines() would treat as a break.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import ConfigError, DataError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "class", "category", "sentiment", "target")
SPLIT_NAMES = {"train": "train", "dev": "val", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SPLIT_ORDER = ("all", "train", "val", "test")
_SPLIT_HELP = "train, dev|val|valid|validation, test"
# Not data: notes shipped next to the files, and aclImdb's unlabelled reviews (train/unsup/).
_IGNORED_FILES = re.compile(r"^(readme|license|licence|notice)\b", re.IGNORECASE)
_IGNORED_FOLDERS = {"unsup"}


@dataclass
class TextSplit:
    """Examples of one split; `origins` says where each came from ("file:line")."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)

    def extend(self, other: TextSplit) -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.origins += other.origins

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextCorpus:
    """The splits found ("train", "val", "test"; only "all" when the data name none), the sorted class names, the
    layout that was recognised and the path read."""

    splits: dict[str, TextSplit]
    classes: list[str]
    format: str
    source: str


@dataclass(frozen=True)
class _Options:
    encoding: str
    text_column: str | None
    label_column: str | None


def read_text_data(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    text_column: str | None = None,
    label_column: str | None = None,
    coarse_labels: bool = False,
) -> TextCorpus:
    """Read a labelled text data set, recognising its layout.

    Args:
        path: a file (label-prefixed lines, or .csv/.tsv) or a folder (a file per class, a folder per class, or split
            files/folders named train, dev|val|valid|validation, test).
        encoding: the files' text encoding (MR and Subj are latin-1).
        text_column: the CSV column holding the text (default: the first of text, sentence, review, content, document).
        label_column: the CSV column holding the label (default: first of label, class, category, sentiment, target).
        coarse_labels: keep the part of each label before ":" (TREC's 6 coarse classes from `DESC:manner`, as Kim 2014).

    Returns:
        The corpus.

    Raises:
        DataError: a missing, empty or malformed file or folder (the message names the file and line).
        ConfigError: an unknown encoding, or a column option for data that have no columns.
    """
    path = Path(path)
    options = _Options(_check_encoding(encoding), text_column, label_column)
    if path.is_file():
        split, layout = _read_file(path, path.parent, options)
        splits = {"all": split}
    elif path.is_dir():
        splits, layout = _read_folder(path, options)
    else:
        raise DataError(f"{path}: no such file or folder")
    if (text_column or label_column) and "csv" not in layout:
        raise ConfigError(f"--text-column/--label-column apply to .csv/.tsv files; {path} is in the {layout} layout")
    if coarse_labels:
        for split in splits.values():
            split.labels = [label.split(":", 1)[0] for label in split.labels]
    classes = sorted({label for split in splits.values() for label in split.labels})
    splits = dict(sorted(splits.items(), key=lambda item: _SPLIT_ORDER.index(item[0])))
    return TextCorpus(splits=splits, classes=classes, format=layout, source=str(path))


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"--encoding: unknown encoding {encoding!r}") from None


# ---- one file ----------------------------------------------------------------------------------------------------


def _read_file(path: Path, root: Path, options: _Options) -> tuple[TextSplit, str]:
    """A single file: CSV/TSV by extension, else `label sentence` lines."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return _read_csv(path, root, options), "csv"
    return _read_label_lines(path, root, options.encoding), "lines"


def _decode(path: Path, encoding: str) -> str:
    """The file's text; a decoding error names the line and byte, and what to pass instead."""
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        name = "UTF-8" if encoding == "utf-8" else encoding
        raise DataError(
            f"{path} line {line}: not {name} text (byte 0x{data[error.start]:02x}); "
            "pass --encoding latin-1 or the file's encoding"
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise DataError(f"{path}: empty file")
    return text


def _lines(path: Path, encoding: str) -> list[str]:
    """Non-empty lines, split on "\\n" only, a trailing "\\r" dropped; a final newline is fine, an empty line is not."""
    lines = _decode(path, encoding).split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path} line {number}: empty line")
    return lines


def _origin(path: Path, root: Path, line: int) -> str:
    return f"{path.relative_to(root).as_posix()}:{line}"


def _read_label_lines(path: Path, root: Path, encoding: str) -> TextSplit:
    """Kim's layout: `label sentence` per line (TREC: `DESC:manner How did ...`)."""
    split = TextSplit()
    for number, line in enumerate(_lines(path, encoding), 1):
        parts = line.strip().split(maxsplit=1)
        if len(parts) < 2:
            raise DataError(f"{path} line {number}: {parts[0]!r} has no sentence after it; expected `label sentence`")
        split.labels.append(parts[0])
        split.texts.append(parts[1].strip())
        split.origins.append(_origin(path, root, number))
    return split


def _read_sentence_lines(path: Path, root: Path, encoding: str, label: str) -> TextSplit:
    """One sentence per line, all of class `label` (rt-polarity.pos)."""
    lines = _lines(path, encoding)
    origins = [_origin(path, root, number) for number in range(1, len(lines) + 1)]
    return TextSplit([line.strip() for line in lines], [label] * len(lines), origins)


# ---- CSV / TSV ---------------------------------------------------------------------------------------------------


def _read_csv(path: Path, root: Path, options: _Options) -> TextSplit:
    """A header row, then one example per row; the delimiter from the extension (.tsv) or sniffed (.csv)."""
    text = _decode(path, options.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, text))
    header = [name.strip() for name in next(reader)]
    text_index = _column(path, header, options.text_column, TEXT_COLUMNS, "text")
    label_index = _column(path, header, options.label_column, LABEL_COLUMNS, "label")
    split = TextSplit()
    for row in reader:
        split.texts.append(_field(path, reader.line_num, row, header, text_index))
        split.labels.append(_field(path, reader.line_num, row, header, label_index))
        split.origins.append(_origin(path, root, reader.line_num))
    if not split.texts:
        raise DataError(f"{path}: a header but no rows")
    return split


def _delimiter(path: Path, text: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    try:
        return csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _column(path: Path, header: list[str], wanted: str | None, defaults: tuple[str, ...], role: str) -> int:
    """Index of the named column (exact, else case-insensitive) or of the first default present."""
    lowered = [name.lower() for name in header]
    if wanted is not None:
        if wanted in header:
            return header.index(wanted)
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise DataError(f"{path}: no column {wanted!r} for the {role}; its columns: {', '.join(header)}")
    for name in defaults:
        if name in lowered:
            return lowered.index(name)
    raise DataError(
        f"{path}: no {role} column (looked for {', '.join(defaults)}); its columns: {', '.join(header)}; "
        f"pass --{role}-column"
    )


def _field(path: Path, line: int, row: list[str], header: list[str], index: int) -> str:
    if not row:
        raise DataError(f"{path} line {line}: empty line")
    if len(row) != len(header):
        raise DataError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
    value = row[index].strip()
    if not value:
        raise DataError(f"{path} line {line}: empty {header[index]!r}")
    return value


# ---- folders -----------------------------------------------------------------------------------------------------


def _split_of(name: str) -> str | None:
    """The split a file or folder name says (TREC.train, train.csv, sst_dev.tsv), None if it says none."""
    for part in re.split(r"[._\-\s]+", name.lower()):
        if part in SPLIT_NAMES:
            return SPLIT_NAMES[part]
    return None


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """Sub-folders and data files, sorted, without hidden entries and READMEs."""
    children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    folders = [p for p in children if p.is_dir() and p.name not in _IGNORED_FOLDERS]
    files = [p for p in children if p.is_file() and not _IGNORED_FILES.match(p.name)]
    return folders, files


def _read_folder(folder: Path, options: _Options) -> tuple[dict[str, TextSplit], str]:
    folders, files = _entries(folder)
    if any(_split_of(sub.name) for sub in folders):
        return _read_split_folders(folder, folders), "split-folders/class-folders"
    if folders:
        return {"all": _read_class_folders(folder, folder, options.encoding)}, "class-folders"
    if not files:
        raise DataError(f"{folder}: no text files or class folders in it")
    if any(_split_of(path.name) for path in files):
        return _read_split_files(folder, files, options)
    if len(files) == 1:
        split, layout = _read_file(files[0], folder, options)
        return {"all": split}, layout
    return {"all": _read_class_files(folder, files, options.encoding)}, "class-files"


def _read_class_files(folder: Path, files: list[Path], encoding: str) -> TextSplit:
    """A file per class: the class is the extension if the files share a stem (rt-polarity.pos/.neg), else the stem."""
    shared_stem = len({path.stem for path in files}) == 1 and all(path.suffix for path in files)
    split = TextSplit()
    for path in files:
        label = path.suffix[1:] if shared_stem else path.stem
        split.extend(_read_sentence_lines(path, folder, encoding, label))
    return split


def _read_class_folders(folder: Path, root: Path, encoding: str) -> TextSplit:
    """A folder per class of .txt files, one example per file (aclImdb's pos/ neg/); newlines become spaces."""
    split = TextSplit()
    for class_folder in _entries(folder)[0]:
        paths = sorted(class_folder.glob("*.txt"))
        if not paths:
            raise DataError(f"{class_folder}: class {class_folder.name!r} has no .txt files")
        for path in paths:
            split.texts.append(" ".join(_decode(path, encoding).split("\n")).strip())
            split.labels.append(class_folder.name)
            split.origins.append(_origin(path, root, 1))
    return split


def _read_split_folders(folder: Path, folders: list[Path]) -> dict[str, TextSplit]:
    """train/ test/ (dev/) sub-folders each holding class folders (aclImdb); loose files beside them are notes."""
    splits: dict[str, TextSplit] = {}
    for sub in folders:
        name = _split_of(sub.name)
        if name is None:
            continue
        if name in splits:
            raise DataError(f"{folder}: two folders for the {name!r} split")
        splits[name] = _read_class_folders(sub, folder, "utf-8")
    return splits


def _read_split_files(folder: Path, files: list[Path], options: _Options) -> tuple[dict[str, TextSplit], str]:
    """Files named for their split (TREC.train, TREC.test; train.csv, test.csv), each read as a single file."""
    splits: dict[str, TextSplit] = {}
    layouts: set[str] = set()
    for path in files:
        name = _split_of(path.name)
        if name is None:
            raise DataError(f"{path}: not named for a split ({_SPLIT_HELP}) while other files in {folder} are")
        if name in splits:
            raise DataError(f"{folder}: two files for the {name!r} split")
        splits[name], layout = _read_file(path, folder, options)
        layouts.add(layout)
    return splits, "split-files/" + ",".join(sorted(layouts))
