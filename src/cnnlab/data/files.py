"""Readers for image files: a folder of class sub-folders, or a CSV manifest of `path,label[,split]`.

Both produce lists of (file, class) per split; `files_to_splits` then decodes them all into one
uint8 tensor when they fit in `max_in_memory_bytes` (estimated from the first file's header), else
returns streaming sets that decode per batch. The decision is taken once for all splits together.

What a folder walk takes, and what it reports (a silent skip would train on a different data set than the user
thinks): files with an image extension, and files without any extension whose first bytes are an image's
(face and scan collections often drop the extension). Files with another extension (`notes.txt`) are skipped
and counted in one `cnnlab: note:` line on stderr. Hidden files and folders (`.DS_Store`, `.ipynb_checkpoints`)
and the litter of other systems (`__MACOSX`, `Thumbs.db`, `desktop.ini`) are skipped without a word. Symbolic
links are followed only while they stay inside the data folder; a link that leaves it, is broken, or loops back
to a folder above it is not followed, and one `cnnlab: warning:` line counts them.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.decode import IMAGE_EXTENSIONS, SizePolicy, decode_files, is_image_file, probe, sniff_format
from cnnlab.data.imageset import ImageSet
from cnnlab.data.medical import MEDICAL_EXTENSIONS, is_dicom_folder, is_medical_file
from cnnlab.errors import DataError

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
_PROBE_SAMPLES = 64
JUNK_NAMES = {"__MACOSX", "Thumbs.db", "desktop.ini", "@eaDir"}  # macOS zips, Windows Explorer, Synology NAS
_SHOWN = 3  # example paths in a note


@dataclass
class FileList:
    """Files of one split with their class names (resolved to indices once the class list is known)."""

    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in JUNK_NAMES


def _examples(items: list[str]) -> str:
    return ", ".join(items[:_SHOWN]) + (", ..." if len(items) > _SHOWN else "")


@dataclass
class FolderScan:
    """One walk over a data folder: the links it would not follow and the files it skipped, reported once."""

    root: str  # the data folder's real path; links out of it are not followed
    not_images: list[str] = field(default_factory=list)
    links: dict[str, None] = field(default_factory=dict)  # "path -> why", once each (folders are listed twice)

    @classmethod
    def of(cls, folder: Path) -> FolderScan:
        return cls(os.path.realpath(folder))

    def follows(self, entry: os.DirEntry) -> bool:
        """A plain entry, or a link whose target exists inside the data folder."""
        if not entry.is_symlink():
            return True
        target = os.path.realpath(entry.path)
        if not os.path.exists(target):
            self.links[f"{entry.path} (broken or looping)"] = None
        elif os.path.commonpath([self.root, target]) != self.root:
            self.links[f"{entry.path} -> {target} (outside {self.root})"] = None
        else:
            return True
        return False

    def is_image(self, path: str, name: str) -> bool:
        """An image extension, or no extension and an image's first bytes; other files are counted."""
        if is_image_file(name) or ("." not in name and _sniff(path)) or is_medical_file(path):
            return True
        self.not_images.append(path)
        return False

    def report(self) -> None:
        if self.links:
            count = len(self.links)
            print(
                f"cnnlab: warning: {count} symbolic link{'s' * (count != 1)} not followed: "
                f"{_examples(list(self.links))}",
                file=sys.stderr,
            )
        if self.not_images:
            count = len(self.not_images)
            print(
                f"cnnlab: note: {count} file{'s' * (count != 1)} without an image extension skipped "
                f"({_examples(self.not_images)})",
                file=sys.stderr,
            )


def _sniff(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return sniff_format(handle.read(32)) is not None
    except OSError:
        return False


def _entries(folder: Path | str, scan: FolderScan) -> list[os.DirEntry]:
    """The visible entries of `folder`, sorted by name; links that leave the data folder are left out."""
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)
    except OSError as error:
        raise DataError(f"{folder}: cannot list folder ({error.strerror or error})") from None
    return [entry for entry in entries if not is_hidden(entry.name) and scan.follows(entry)]


def _subdirs(folder: Path, scan: FolderScan) -> list[Path]:
    return [Path(entry.path) for entry in _entries(folder, scan) if entry.is_dir()]


def _split_dirs(folder: Path, scan: FolderScan) -> dict[str, Path]:
    splits: dict[str, Path] = {}
    for path in _subdirs(folder, scan):
        split = SPLIT_NAMES.get(path.name.lower())
        if split in splits:
            raise DataError(
                f"{folder}: folders {splits[split].name}/ and {path.name}/ both hold the {split} split; keep one"
            )
        if split is not None:
            splits[split] = path
    return splits


def resolve_folder(folder: Path, scan: FolderScan | None = None) -> Path:
    """Step into a lone wrapper folder (`CIFAR-10-images/` holding train/ and test/)."""
    scan = scan or FolderScan.of(folder)
    children = _subdirs(folder, scan)
    if not _split_dirs(folder, scan) and len(children) == 1 and _split_dirs(children[0], scan):
        return children[0]
    return folder


def _is_within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def images_under(folder: Path | str, scan: FolderScan, ancestors: tuple[str, ...] = ()) -> list[str]:
    """Image files below `folder`, depth first in name order (a folder's files before its sub-folders').

    DICOM and NIfTI files count as images; a sub-folder of DICOM slices is one item (a series, one volume),
    not a folder of 2-D images. A linked folder that is the folder itself or one above it (a loop) is not entered.
    """
    here = os.path.realpath(folder)
    ancestors = (*ancestors, here)
    files, folders = [], []
    for entry in _entries(folder, scan):
        if entry.is_dir():
            folders.append(entry.path)
        elif entry.is_file() and scan.is_image(entry.path, entry.name):
            files.append(entry.path)
    for path in folders:
        target = os.path.realpath(path)
        if target in ancestors or _is_within(here, target):
            scan.links[f"{path} (loops back to {target})"] = None
        elif is_dicom_folder(path):
            files.append(path)  # a DICOM series: one volume
        else:
            files += images_under(path, scan, ancestors)
    return files


def _class_folders(folder: Path, scan: FolderScan) -> FileList:
    classes = _subdirs(folder, scan)
    if not classes:
        raise DataError(
            f"{folder}: expected one sub-folder per class (e.g. {folder}/cat/*.png), or train/ and test/ folders "
            "of them; found no sub-folders"
        )
    files = FileList()
    for class_dir in classes:
        skipped = len(scan.not_images)
        images = images_under(class_dir, scan, (scan.root, os.path.realpath(folder)))
        if not images:
            others = scan.not_images[skipped:]
            found = f"; it holds only {_examples(others)}" if others else ""
            raise DataError(
                f"{class_dir}: class folder holds no images; expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS + MEDICAL_EXTENSIONS)}" + found
            )
        files.paths += images
        files.labels += [class_dir.name] * len(images)
    return files


def list_folder(folder: Path) -> dict[str, FileList]:
    """Files per split: train/ val/ test/ sub-folders when present, else the folder itself is `train`.

    What was skipped (links not followed, files without an image extension) is reported once on stderr.
    """
    scan = FolderScan.of(folder)
    folder = resolve_folder(folder, scan)
    split_dirs = _split_dirs(folder, scan)
    if not split_dirs:
        lists = {"train": _class_folders(folder, scan)}
    else:
        lists = {split: _class_folders(path, scan) for split, path in split_dirs.items()}
    scan.report()
    return lists


def folder_classes(lists: dict[str, FileList], folder: Path) -> list[str]:
    """Class names of the training folders (sorted, as ImageFolder does); other splits must use them."""
    first = lists.get("train") or next(iter(lists.values()))
    classes = sorted(set(first.labels))
    for split, files in lists.items():
        extra = sorted(set(files.labels) - set(classes))
        if extra:
            raise DataError(f"{folder}: {split} has class folder {extra[0]!r} that the training data lacks ({classes})")
    check_spellings({name: f"folder {name}/" for name in classes}, str(folder))
    return classes


def _as_number(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_spellings(first_seen: dict[str, str], source: str) -> None:
    """Refuse two spellings of one number ("1" and "01", "1.0") as class names: one class or a typo, never two.

    Args:
        first_seen: each label -> where it first appears ("line 3", "folder 01/"), for the message.
    """
    numbers: dict[float, str] = {}
    for label, where in first_seen.items():
        value = _as_number(label)
        if value is None:
            continue
        if value in numbers:
            other = numbers[value]
            raise DataError(
                f"{source}: labels {other!r} ({first_seen[other]}) and {label!r} ({where}) spell the same number; "
                "write each class one way (they would silently become two classes)"
            )
        numbers[value] = label


def read_manifest(csv_path: Path, classes: Sequence[str] | None = None) -> tuple[dict[str, FileList], list[str]]:
    """`path,label[,split]` rows; paths relative to the CSV's folder; labels are class names.

    A path is an image file, a DICOM (`.dcm`) or NIfTI (`.nii`, `.nii.gz`) file, or a folder of DICOM slices
    (one series, one volume); `cnnlab.data.medical` reads the medical ones.

    Labels are names, compared as written: "1" and "01" would be two classes, so two spellings of one number
    are refused (naming both and their lines) rather than guessed at. Numeric labels sort as numbers.
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            missing = [c for c in ("path", "label") if c not in columns]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column {missing[0]!r}; expected columns path,label[,split], "
                    f"the CSV has columns: {', '.join(columns) or '(none)'}"
                )
            lists, first_lines = _manifest_rows(csv_path, reader, has_split="split" in columns)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{csv_path}: cannot read CSV manifest ({error})") from None
    if not lists:
        raise DataError(f"{csv_path}: CSV manifest has no rows; expected one row per image")
    check_spellings({label: f"line {line}" for label, line in first_lines.items()}, str(csv_path))
    return lists, _manifest_classes(csv_path, lists, classes)


def _manifest_rows(
    csv_path: Path, reader: csv.DictReader, has_split: bool
) -> tuple[dict[str, FileList], dict[str, int]]:
    """The rows per split, and the line where each label first appears."""
    base = csv_path.parent
    lists: dict[str, FileList] = {}
    first_lines: dict[str, int] = {}
    seen: dict[str, tuple[int, str, str]] = {}  # file -> (line, label, split): one file, one label, one split
    for line, row in enumerate(reader, start=2):
        path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not path or not label:
            raise DataError(f"{csv_path}, line {line}: empty {'path' if not path else 'label'}")
        if "\x00" in path + label:
            raise DataError(f"{csv_path}, line {line}: holds a NUL byte; expected a UTF-8 text CSV (not UTF-16)")
        split_value = (row.get("split") or "train").strip().lower() if has_split else "train"
        if split_value not in SPLIT_NAMES:
            raise DataError(f"{csv_path}, line {line}: split {split_value!r} is not one of train, val, test")
        full = os.path.join(base, path)
        if not os.path.isfile(full) and not is_dicom_folder(full):
            what = "is a folder, not an image file (nor a DICOM series)" if os.path.isdir(full) else "does not exist"
            raise DataError(f"{csv_path}, line {line}: image file {full} {what}")
        split = SPLIT_NAMES[split_value]
        _check_repeat(csv_path, seen, full, (line, label, split))
        files = lists.setdefault(split, FileList())
        files.paths.append(full)
        files.labels.append(label)
        first_lines.setdefault(label, line)
    return lists, first_lines


def _check_repeat(csv_path: Path, seen: dict[str, tuple[int, str, str]], path: str, row: tuple[int, str, str]) -> None:
    """A file listed twice with another label (a contradiction) or in another split (test images in training)."""
    earlier = seen.setdefault(os.path.normpath(path), row)
    if earlier[1:] != row[1:]:
        line, label, split = row
        raise DataError(
            f"{csv_path}, line {line}: {path} is listed again (line {earlier[0]}: {earlier[1]!r} in {earlier[2]}, "
            f"now {label!r} in {split}); a file has one label and one split"
        )


def _manifest_classes(csv_path: Path, lists: dict[str, FileList], classes: Sequence[str] | None) -> list[str]:
    names = {label for files in lists.values() for label in files.labels}
    if classes is None:
        numeric = all(n.lstrip("-").isdigit() for n in names)
        return sorted(names, key=int) if numeric else sorted(names)
    unknown = sorted(names - set(classes))
    if unknown:
        raise DataError(
            f"{csv_path}: label {unknown[0]!r} is not one of the {len(classes)} classes: {', '.join(classes)}"
        )
    return list(classes)


def _probe_sample(paths: list[str], channels: int | None) -> tuple[int, tuple[int, int]]:
    """Channels (requested, else the majority of an evenly spread sample of headers) and the first file's size.

    A sample, not every file: opening 50,000 headers would cost a second, and the same rule then
    serves in-memory and streaming sets alike.
    """
    first_channels, first_size = probe(paths[0])
    if channels is not None:
        return channels, first_size
    spread = sorted({round(i * (len(paths) - 1) / max(1, _PROBE_SAMPLES - 1)) for i in range(_PROBE_SAMPLES)})
    counts = [probe(paths[i])[0] for i in spread]
    return (1 if counts.count(1) > len(counts) / 2 else 3), first_size


def files_to_splits(
    lists: dict[str, FileList],
    classes: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
    max_in_memory_bytes: int,
    source: str,
) -> dict[str, ImageSet]:
    """Decode into memory when the estimate fits, else stream; every split shares one channel count and size."""
    index = {name: i for i, name in enumerate(classes)}
    all_paths = [p for files in lists.values() for p in files.paths]
    probed_channels, first_size = _probe_sample(all_paths, channels)
    policy = SizePolicy(size or first_size, resize=size is not None, reference_file=all_paths[0])
    height, width = policy.size
    estimate = len(all_paths) * probed_channels * height * width
    splits = {}
    if estimate <= max_in_memory_bytes:
        images = decode_files(all_paths, policy, probed_channels)
        start = 0
        for split, files in lists.items():
            labels = [index[label] for label in files.labels]
            splits[split] = ImageSet(images[start : start + len(labels)], labels, classes, source, files.paths)
            start += len(labels)
        return splits
    for split, files in lists.items():
        labels = [index[label] for label in files.labels]
        splits[split] = ImageSet.from_files(files.paths, labels, classes, policy, probed_channels, source)
    return splits
