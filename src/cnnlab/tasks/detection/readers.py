"""Annotation readers for detection: Pascal VOC XML, COCO JSON and YOLO txt, parsed into plain `Record`s.

The readers only parse: they find each annotation's image file and turn every box into corner coordinates in
the units of its file (pixels for VOC and COCO, fractions of the image for YOLO). Checking a box against its
image needs the image's real size, which only decoding tells (a VOC <size> or a COCO width/height may be missing
or wrong), so `data.py` checks boxes after decoding. A problem found while parsing is recorded, not raised, on the
record (a whole file: a malformed XML, a missing image) or on the box (a malformed txt line), so that
`--skip-invalid` can skip exactly that and go on; without it the loader raises the first one.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cnnlab.data.decode import IMAGE_EXTENSIONS, is_image_file
from cnnlab.data.files import SPLIT_NAMES, is_hidden
from cnnlab.errors import DataError

FORMATS = ("voc", "coco", "yolo")
# Folders an annotation's image is looked for in first, before other sibling folders (lower-case).
IMAGE_FOLDER_NAMES = ("jpegimages", "images", "image", "imgs", "img", "pictures", "photos", "data")
NAMES_FILES = ("classes.txt", "obj.names", "names.txt", "labels.txt")
_SPLIT_WORD = re.compile(r"^(train|training|trainval|val|valid|validation|dev|test|testing)(\d*|[-_.].*)$")
_SNIFF_BYTES = 1 << 16


@dataclass
class Box:
    """One annotated object as its file gives it: corners (x1, y1, x2, y2), in pixels or (YOLO) fractions."""

    label: str  # the class name (YOLO indices are turned into names by the reader)
    coords: tuple[float, float, float, float]
    where: str  # "object 2", "line 3", "annotation id 17": how a user finds it in the file
    shown: str  # the values as the file has them, for messages
    normalized: bool = False
    problem: str | None = None  # why the box cannot be used, found while parsing


@dataclass
class Record:
    """One image and its boxes, from one annotation file."""

    annotation: str  # the file to name in messages
    image: str | None
    boxes: list[Box] = field(default_factory=list)
    split: str | None = None  # "train" / "val" / "test" when the data set says so
    problem: str | None = None  # why the whole image cannot be used (malformed file, image not found)


@dataclass
class ReadResult:
    records: list[Record]
    classes: list[str] | None  # declared by the data (COCO categories, YOLO names); None: VOC, from names seen
    source: str


# ----------------------------------------------------------------------------------------------- file system


def walk_files(root: Path) -> list[Path]:
    """Every non-hidden file under `root`, sorted. Links to folders are followed (an images/ link is common),
    but a folder already visited is not entered again, so a link loop ends."""
    found: list[Path] = []
    visited: set[str] = set()
    try:
        for folder, dirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in visited:
                dirs[:] = []
                continue
            visited.add(real)
            dirs[:] = sorted(d for d in dirs if not is_hidden(d))
            found.extend(Path(folder, name) for name in sorted(files) if not is_hidden(name))
    except OSError as error:
        raise DataError(f"{root}: cannot list data folder ({error.strerror or error})") from None
    return found


def split_word(name: str) -> str | None:
    """ "train" / "val" / "test" for a folder or file name that says so (train2017, valid, test-dev), else None."""
    match = _SPLIT_WORD.match(name.lower())
    if not match:
        return None
    word = match.group(1)
    return "train" if word == "trainval" else SPLIT_NAMES[word]


def split_of(path: Path, root: Path) -> str | None:
    """The split named by a folder between `root` and `path` (the deepest one wins), else None."""
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        return None
    for part in reversed(parts):
        word = split_word(part)
        if word:
            return word
    return None


class ImageFinder:
    """Finds an annotation's image by name near the annotation file, listing each folder once.

    Looked for, in order: the folder of the annotation, its image-like sub-folders, the sibling folders
    (Annotations/ + JPEGImages/, annotations/ + images/; image-like names first) and the parent folder; first
    by the exact name (then ignoring case), then by the stem with any image extension (a <filename> whose
    extension is missing or wrong).
    """

    def __init__(self) -> None:
        self._listings: dict[Path, tuple[dict[str, str], dict[str, list[str]], list[Path]]] = {}

    def _listing(self, folder: Path) -> tuple[dict[str, str], dict[str, list[str]], list[Path]]:
        if folder not in self._listings:
            names: dict[str, str] = {}
            stems: dict[str, list[str]] = {}
            subdirs: list[Path] = []
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                entries = []
            for entry in entries:
                if is_hidden(entry.name):
                    continue
                if entry.is_dir():
                    subdirs.append(Path(entry.path))
                elif is_image_file(entry.name):
                    names.setdefault(entry.name.lower(), entry.path)
                    stems.setdefault(os.path.splitext(entry.name)[0].lower(), []).append(entry.path)
            for paths in stems.values():
                paths.sort(key=lambda p: _extension_rank(p))
            self._listings[folder] = (names, stems, subdirs)
        return self._listings[folder]

    def candidate_folders(self, folder: Path) -> list[Path]:
        def image_like_first(dirs: list[Path]) -> list[Path]:
            return sorted(dirs, key=lambda d: (d.name.lower() not in IMAGE_FOLDER_NAMES, d.name))

        own_subdirs = [d for d in self._listing(folder)[2] if d.name.lower() in IMAGE_FOLDER_NAMES]
        parent = folder.parent
        siblings = [d for d in self._listing(parent)[2] if d != folder] if parent != folder else []
        out = [folder, *image_like_first(own_subdirs), *image_like_first(siblings)]
        if parent != folder:
            out.append(parent)
        return out

    def find(self, folder: Path, name: str, extra: list[str] = (), fallback_stem: str | None = None) -> str | None:
        """The image called `name` near `folder`; then the paths in `extra` (e.g. VOC <path>); then by stem."""
        name = name.replace("\\", "/").strip()
        folders = self.candidate_folders(folder)
        if name:
            relative = Path(name)
            if relative.is_absolute() and relative.is_file():
                return str(relative)
            for base in folders:
                candidate = base / relative
                if not relative.is_absolute() and candidate.is_file():
                    return str(candidate)
            base_name = relative.name.lower()
            for base in folders:
                hit = self._listing(base)[0].get(base_name)
                if hit:
                    return hit
        for other in extra:
            if other and Path(other).is_file() and is_image_file(other):
                return other
        stems = [os.path.splitext(Path(name).name)[0].lower()] if name else []
        if fallback_stem:
            stems.append(fallback_stem.lower())
        for stem in stems:
            for base in folders:
                hits = self._listing(base)[1].get(stem)
                if hits:
                    return hits[0]
        return None


def _extension_rank(path: str) -> int:
    suffix = os.path.splitext(path)[1].lower()
    return IMAGE_EXTENSIONS.index(suffix) if suffix in IMAGE_EXTENSIONS else len(IMAGE_EXTENSIONS)


def _head(path: Path, count: int = _SNIFF_BYTES) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except OSError:
        return b""


def _tail(path: Path, count: int = _SNIFF_BYTES) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - count))
            return handle.read(count)
    except OSError:
        return b""


def is_voc_xml(path: Path) -> bool:
    return path.suffix.lower() == ".xml" and b"<annotation" in _head(path, 4096)


def is_coco_json(path: Path) -> bool:
    """A .json whose first or last 64 kB holds a COCO key (read without parsing: instances files are large)."""
    if path.suffix.lower() != ".json":
        return False
    text = _head(path) + _tail(path)
    return b'"images"' in text or b'"annotations"' in text or b'"categories"' in text


# ---------------------------------------------------------------------------------------------- detection


def detect_format(path: str | os.PathLike) -> str:
    """ "voc", "coco" or "yolo" for a file or folder, or a one-line DataError saying what was looked for."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data path does not exist")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix == ".xml":
            return "voc"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DataError(f"{path}: unknown detection data file; expected a COCO .json, a VOC .xml or a YOLO data.yaml")
    found = formats_in(path, walk_files(path))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError(
            f"{path}: holds annotations in several formats ({', '.join(found)}); name one with --data-format"
        )
    raise DataError(
        f"{path}: cannot tell the detection data format; expected Pascal VOC .xml files, a COCO .json, or YOLO "
        "labels (images/ + labels/ folders of .txt, or a data.yaml); or name it with --data-format voc|coco|yolo"
    )


def formats_in(root: Path, files: list[Path]) -> list[str]:
    found = []
    if any(is_voc_xml(f) for f in files):
        found.append("voc")
    if any(is_coco_json(f) for f in files):
        found.append("coco")
    if _looks_yolo(root, files):
        found.append("yolo")
    return found


def _looks_yolo(root: Path, files: list[Path]) -> bool:
    for f in files:
        if f.suffix.lower() in (".yaml", ".yml") and f.parent == root and _yaml_names(f) is not None:
            return True
    txts = [f for f in files if f.suffix.lower() == ".txt" and f.name.lower() not in NAMES_FILES]
    if any("labels" in f.relative_to(root).parts[:-1] for f in txts):
        return True
    images = {f.with_suffix("") for f in files if is_image_file(f.name)}
    return any(f.with_suffix("") in images for f in txts)


# ----------------------------------------------------------------------------------------------------- VOC


def _number(text: str | None) -> float:
    value = float((text or "").strip())
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def parse_xml(path: Path) -> ET.Element:
    """The root element, refusing DTDs: an entity declaration could expand to gigabytes (billion laughs)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read annotation file ({error.strerror or error})") from None
    lowered = data.lower()  # the whole file: a prolog padded with comments could hide a late declaration
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise DataError(f"{path}: XML with a DOCTYPE/ENTITY declaration is refused; VOC annotations need none")
    try:
        return ET.fromstring(data)
    except ET.ParseError as error:
        line = error.position[0] if getattr(error, "position", None) else "?"
        raise DataError(f"{path}: malformed XML at line {line} ({str(error).split(':')[0]})") from None


def _voc_box(obj: ET.Element, index: int) -> Box:
    name = (obj.findtext("name") or "").strip()
    where = f"object {index}" + (f" ({name!r})" if name else "")
    box = obj.find("bndbox")
    if not name:
        return Box("", (0, 0, 0, 0), where, "", problem="object has no <name>")
    if box is None:
        return Box(name, (0, 0, 0, 0), where, "", problem="object has no <bndbox>")
    texts = [box.findtext(key) for key in ("xmin", "ymin", "xmax", "ymax")]
    shown = "[" + ", ".join(str(t).strip() if t is not None else "?" for t in texts) + "]"
    try:
        x1, y1, x2, y2 = (_number(t) for t in texts)
    except ValueError:
        return Box(name, (0, 0, 0, 0), where, shown, problem="<bndbox> needs numbers xmin, ymin, xmax, ymax")
    # VOC pixels are 1-based and inclusive: a box xmin=1..xmax=W covers the whole image, which in continuous
    # 0-based corner coordinates is 0..W. So xmin and ymin move by one and xmax, ymax stay (as detectron2 does).
    return Box(name, (x1 - 1, y1 - 1, x2, y2), where, shown)


def read_voc_file(path: Path, finder: ImageFinder, root: Path) -> Record:
    try:
        tree = parse_xml(path)
    except DataError as error:
        return Record(str(path), None, problem=str(error).removeprefix(f"{path}: "))
    if tree.tag != "annotation":
        return Record(str(path), None, problem=f"root element is <{tree.tag}>; expected a Pascal VOC <annotation>")
    filename = (tree.findtext("filename") or "").strip()
    stored_path = (tree.findtext("path") or "").strip()
    extra = [stored_path, str(path.parent / stored_path)] if stored_path else []
    image = finder.find(path.parent, filename or Path(stored_path.replace("\\", "/")).name, extra, path.stem)
    boxes = [_voc_box(obj, i) for i, obj in enumerate(tree.findall("object"), start=1)]
    record = Record(str(path), image, boxes, split_of(path, root))
    if image is None:
        record.problem = (
            f"image {filename or stored_path or path.stem!r} not found beside the XML, in a sibling folder "
            "(JPEGImages/, images/) or at its <path>"
        )
    return record


def _voc_imagesets(root: Path, files: list[Path]) -> dict[str, str]:
    """stem -> split from ImageSets/Main/{train,val,test,trainval}.txt (VOC devkit), if present."""
    lists = [f for f in files if f.parent.name == "Main" and f.parent.parent.name == "ImageSets"]
    if not lists and root.parent != root:
        main = root.parent / "ImageSets" / "Main"  # the Annotations folder itself was passed
        lists = sorted(main.glob("*.txt")) if main.is_dir() else []
    by_name = {f.stem.lower(): f for f in lists}
    chosen = {"train": by_name.get("train"), "val": by_name.get("val"), "test": by_name.get("test")}
    if chosen["train"] is None and "trainval" in by_name:
        chosen["train"], chosen["val"] = by_name["trainval"], None  # val is then carved from trainval
    splits: dict[str, str] = {}
    for split, list_file in chosen.items():
        if list_file is None:
            continue
        try:
            lines = list_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            raise DataError(f"{list_file}: cannot read split list ({error.strerror or error})") from None
        for line in lines:
            parts = line.split()
            if parts:
                splits.setdefault(parts[0], split)
    return splits


def read_voc(path: Path) -> ReadResult:
    files = [path] if path.is_file() else walk_files(path)
    root = path.parent if path.is_file() else path
    xmls = [f for f in files if f.suffix.lower() == ".xml"]
    if not xmls:
        raise DataError(f"{path}: no Pascal VOC .xml annotation files found")
    finder = ImageFinder()
    records = [read_voc_file(f, finder, root) for f in xmls]
    imagesets = _voc_imagesets(root, files)
    if imagesets:
        listed = []
        for record in records:
            record.split = imagesets.get(Path(record.annotation).stem)
            if record.split is not None:
                listed.append(record)
        records = listed  # the devkit's lists define the data set: files outside them are not part of it
        if not records:
            raise DataError(f"{path}: ImageSets/Main lists none of the {len(xmls)} XML files' names")
    return ReadResult(records, None, str(path))


# ---------------------------------------------------------------------------------------------------- COCO


def _load_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read annotation file ({getattr(error, 'strerror', None) or error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON at line {error.lineno} column {error.colno} ({error.msg})") from None


def _coco_categories(path: Path, data: dict) -> dict[object, str]:
    categories = data.get("categories")
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list of {{id, name}}; it is missing or not a list")
    names: dict[object, str] = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict) or "id" not in category or not str(category.get("name", "")).strip():
            raise DataError(f"{path}: categories[{index}] needs an 'id' and a 'name'")
        if category["id"] in names:
            raise DataError(f"{path}: categories[{index}]: category id {category['id']!r} appears twice")
        names[category["id"]] = str(category["name"]).strip()
    if len(set(names.values())) != len(names):
        raise DataError(f"{path}: two categories share a name; class names must be unique")
    return names


def _coco_box(path: Path, index: int, ann: dict, categories: dict[object, str]) -> Box:
    where = f"annotation id {ann['id']}" if "id" in ann else f"annotations[{index}]"
    bbox = ann.get("bbox")
    shown = json.dumps(bbox) if isinstance(bbox, (list, tuple)) else repr(bbox)
    name = categories.get(ann.get("category_id"))
    if name is None:
        return Box(
            str(ann.get("category_id")),
            (0, 0, 0, 0),
            where,
            shown,
            problem=f"category_id {ann.get('category_id')!r} is not in the file's categories (class list)",
        )
    try:
        x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise ValueError
    except (TypeError, ValueError):
        return Box(name, (0, 0, 0, 0), where, shown, problem="'bbox' must be four numbers [x, y, width, height]")
    return Box(name, (x, y, x + w, y + h), f"{where} ({name!r})", shown)


def read_coco_file(path: Path, finder: ImageFinder, split: str | None) -> tuple[list[Record], list[str]]:
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: not a COCO annotation file; expected an object with an 'images' list")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise DataError(f"{path}: 'annotations' must be a list")
    categories = _coco_categories(path, data)
    records: dict[object, Record] = {}
    for index, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or not str(entry.get("file_name", "")).strip():
            raise DataError(f"{path}: images[{index}] needs an 'id' and a 'file_name'")
        if entry["id"] in records:
            raise DataError(f"{path}: images[{index}]: image id {entry['id']!r} appears twice")
        name = str(entry["file_name"])
        image = finder.find(path.parent, name)
        record = Record(str(path), image, split=split)
        if image is None:
            record.problem = f"image {name!r} (id {entry['id']}) not found beside the JSON or in an images/ folder"
        records[entry["id"]] = record
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise DataError(f"{path}: annotations[{index}] is not an object")
        # Crowd annotations (iscrowd=1) box a group of objects too dense to box one by one; COCO's own evaluation
        # treats them as regions to ignore, not as objects, so they are neither trained on nor scored.
        if ann.get("iscrowd", 0) in (1, True, "1"):
            continue
        record = records.get(ann.get("image_id"))
        if record is None:
            where = f"annotation id {ann['id']}" if "id" in ann else f"annotations[{index}]"
            raise DataError(f"{path}: {where} refers to image id {ann.get('image_id')!r}, which is not in 'images'")
        record.boxes.append(_coco_box(path, index, ann, categories))
    ordered = [categories[key] for key in sorted(categories, key=_sort_key)]
    return list(records.values()), ordered


def _sort_key(value: object) -> tuple[int, object]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def read_coco(path: Path) -> ReadResult:
    if path.is_file():
        jsons, root = [path], path.parent
    else:
        root = path
        jsons = [f for f in walk_files(path) if is_coco_json(f)]
        instances = [f for f in jsons if f.name.lower().startswith("instances")]
        jsons = instances or jsons  # COCO's own folder also holds captions_* and person_keypoints_* files
    if not jsons:
        raise DataError(f"{path}: no COCO .json annotation file found")
    splits = [_json_split(f, root) for f in jsons]
    if len(jsons) > 1 and (None in splits or len(set(splits)) != len(splits)):
        raise DataError(
            f"{path}: holds {len(jsons)} COCO .json files ({', '.join(f.name for f in jsons[:4])}) but their names "
            "or folders do not say train/val/test; pass one .json file"
        )
    finder = ImageFinder()
    records: list[Record] = []
    classes: list[str] | None = None
    for json_path, split in zip(jsons, splits):
        found, names = read_coco_file(json_path, finder, split if len(jsons) > 1 else None)
        if classes is not None and names != classes:
            raise DataError(f"{json_path}: its categories differ from {jsons[0]}'s; the splits must share classes")
        classes = names
        records.extend(found)
    return ReadResult(records, classes, str(path))


def _json_split(path: Path, root: Path) -> str | None:
    stem = path.name.lower().removesuffix(".json")
    for token in re.split(r"[^a-z0-9]+", stem):
        word = split_word(token)
        if word:
            return word
    return split_of(path, root)


# ---------------------------------------------------------------------------------------------------- YOLO


def _yaml_names(path: Path) -> list[str] | None:
    """`names` of an Ultralytics data.yaml (a list, or a dict index -> name), None when absent or unreadable."""
    data = _load_yaml(path, strict=False)
    return _names_from(path, data.get("names")) if isinstance(data, dict) and "names" in data else None


def _load_yaml(path: Path, strict: bool = True) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        if not strict:
            return None
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise DataError(f"{path}: malformed YAML{where}") from None


def _names_from(path: Path, names: object) -> list[str]:
    if isinstance(names, dict):
        try:
            indexed = {int(k): str(v).strip() for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'names' keys must be class indices 0, 1, ...") from None
        if sorted(indexed) != list(range(len(indexed))):
            raise DataError(f"{path}: 'names' must number the classes 0..{len(indexed) - 1} without gaps")
        return [indexed[i] for i in range(len(indexed))]
    if isinstance(names, list) and all(isinstance(n, (str, int, float)) for n in names):
        return [str(n).strip() for n in names]
    raise DataError(f"{path}: 'names' must be a list of class names or a dict index -> name")


def _find_yaml(root: Path) -> Path | None:
    candidates = sorted(p for p in root.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    candidates.sort(key=lambda p: p.stem.lower() not in ("data", "dataset"))
    for candidate in candidates:
        data = _load_yaml(candidate, strict=False)
        if isinstance(data, dict) and "names" in data:
            return candidate
    return None


def _names_file(root: Path, files: list[Path]) -> list[str] | None:
    named = [f for f in files if f.name.lower() in NAMES_FILES or f.suffix.lower() == ".names"]
    named.sort(key=lambda f: (len(f.relative_to(root).parts), f.name.lower() != "classes.txt"))
    if not named:
        return None
    lines = named[0].read_text(encoding="utf-8-sig", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, the extension `.txt`; an image
    outside any `images` folder has its label file beside it."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _yolo_split_paths(yaml_path: Path, data: dict) -> dict[str, list[Path]] | None:
    """Split -> image folders/list files from data.yaml's train/val/test, None unless every one given exists."""
    base_dirs = [yaml_path.parent]
    if isinstance(data.get("path"), str) and data["path"].strip():
        given = Path(data["path"])
        base_dirs.insert(0, given if given.is_absolute() else yaml_path.parent / given)
    out: dict[str, list[Path]] = {}
    seen: set[Path] = set()
    for split in ("train", "val", "test"):
        value = data.get(split)
        if value in (None, ""):
            continue
        resolved = []
        for item in value if isinstance(value, list) else [value]:
            found = _resolve(str(item), base_dirs)
            if found is None:
                return None
            resolved.append(found)
        if set(resolved) <= seen:
            continue  # val: the train folder again (coco128 does this): not a held-out split, carve one instead
        seen.update(resolved)
        out[split] = resolved
    return out if "train" in out else None


def _resolve(item: str, bases: list[Path]) -> Path | None:
    path = Path(item)
    if path.is_absolute():
        return path.resolve() if path.exists() else None
    tries = [path]
    stripped = item
    while stripped.startswith("../"):  # Roboflow writes ../train/images beside a data.yaml at the root
        stripped = stripped[3:]
        tries.append(Path(stripped))
    for base in bases:
        for rel in tries:
            if (base / rel).exists():
                return (base / rel).resolve()
    return None


def _images_of(entry: Path) -> list[Path]:
    if entry.is_dir():
        return [f for f in walk_files(entry) if is_image_file(f.name)]
    lines = entry.read_text(encoding="utf-8", errors="replace").splitlines()  # a list file of image paths
    out = []
    for line in lines:
        line = line.strip()
        if line:
            p = Path(line)
            out.append(p if p.is_absolute() else (entry.parent / p))
    return out


def _yolo_line(label_file: Path, number: int, line: str, names: list[str] | None) -> Box:
    parts = line.split()
    where = f"line {number}"
    shown = " ".join(parts)
    values = []
    try:
        values = [float(v) for v in parts]
    except ValueError:
        pass
    count = len(parts)
    polygon = count > 5 and (count - 1) % 2 == 0  # a segment x1 y1 x2 y2 ...: its bounding box, as Ultralytics does
    if not values or not (count == 5 or polygon) or not all(math.isfinite(v) for v in values):
        return Box("", (0, 0, 0, 0), where, shown, True, "expected 'class cx cy w h' (numbers, normalised to 0..1)")
    if values[0] != int(values[0]) or values[0] < 0:
        return Box("", (0, 0, 0, 0), where, shown, True, f"class {parts[0]!r} must be a class index 0, 1, ...")
    index = int(values[0])
    if names is not None and index >= len(names):
        return Box(
            str(index),
            (0, 0, 0, 0),
            where,
            shown,
            True,
            f"class {index} is not in the class list ({len(names)} classes: 0..{len(names) - 1})",
        )
    label = names[index] if names is not None else str(index)
    if polygon:
        xs, ys = values[1::2], values[2::2]
        coords = (min(xs), min(ys), max(xs), max(ys))
    else:
        cx, cy, w, h = values[1:]
        coords = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    return Box(label, coords, f"{where} ({label!r})", shown, True)


def read_yolo_labels(label_file: Path, names: list[str] | None) -> tuple[list[Box], str | None]:
    try:
        text = label_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        return [], f"cannot read label file ({getattr(error, 'strerror', None) or error})"
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            boxes.append(_yolo_line(label_file, number, line, names))
    return boxes, None


def read_yolo(path: Path, classes: list[str] | None = None) -> ReadResult:
    """Ultralytics layout: images/ + labels/ (optionally under train/val/test), or Darknet's images with their
    .txt beside them; class names from data.yaml, else classes.txt / obj.names, else `classes`, else numbers."""
    yaml_path = path if path.is_file() else _find_yaml(path)
    root = path.parent if path.is_file() else path
    files = walk_files(root)
    names = None
    split_paths = None
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        if not isinstance(data, dict):
            raise DataError(f"{yaml_path}: expected a mapping with 'names' (and train/val/test)")
        if "names" in data:
            names = _names_from(yaml_path, data["names"])
        split_paths = _yolo_split_paths(yaml_path, data)
    if names is None:
        names = _names_file(root, files) or classes
    images: list[tuple[Path, str | None]] = []
    if split_paths:
        for split, entries in split_paths.items():
            images.extend((image, split) for entry in entries for image in _images_of(entry))
    else:
        all_images = [f for f in files if is_image_file(f.name)]
        in_images_folders = [f for f in all_images if "images" in f.relative_to(root).parts[:-1]]
        chosen = in_images_folders or all_images
        images = [(f, split_of(f, root)) for f in chosen]
        if any(split is not None for _, split in images):
            images = [(f, split or "train") for f, split in images]
    if not images:
        raise DataError(f"{path}: no images found for the YOLO labels (expected images/ and labels/ folders)")
    records = []
    labelled: set[Path] = set()
    for image, split in images:
        label_file = label_path(image)
        record = Record(str(label_file), str(image), split=split)
        if not image.is_file():
            record.problem = f"image {image} listed in the data set does not exist"
        elif label_file.is_file():  # no label file = an image without objects (Ultralytics' rule)
            labelled.add(label_file.resolve())
            record.boxes, record.problem = read_yolo_labels(label_file, names)
        records.append(record)
    records.extend(_orphan_labels(root, files, labelled))
    if names is None:
        seen = {int(b.label) for r in records for b in r.boxes if b.problem is None}
        names = [str(i) for i in range(max(seen) + 1)] if seen else []
    return ReadResult(records, names, str(path))


def _orphan_labels(root: Path, files: list[Path], labelled: set[Path]) -> list[Record]:
    """Label files under a labels/ folder whose image (the same path under images/) does not exist: annotations
    whose image is missing. Labels of images outside the chosen splits are not orphans."""
    out = []
    stems: dict[Path, set[str]] = {}
    for f in files:
        rel = f.relative_to(root).parts
        if f.suffix.lower() != ".txt" or "labels" not in rel[:-1] or f.name.lower() in NAMES_FILES:
            continue
        if f.resolve() in labelled:
            continue
        parts = list(f.parts)
        last = len(parts) - 2 - parts[-2::-1].index("labels")
        parts[last] = "images"
        folder = Path(*parts[:-1])
        if folder not in stems:
            try:
                stems[folder] = {os.path.splitext(n)[0] for n in os.listdir(folder) if is_image_file(n)}
            except OSError:
                stems[folder] = set()
        if f.stem not in stems[folder]:
            out.append(Record(str(f), None, problem=f"label file has no image (looked for {folder / f.stem}.*)"))
    return out


def read_records(path: Path, fmt: str, classes: list[str] | None = None) -> ReadResult:
    if fmt == "voc":
        return read_voc(path)
    if fmt == "coco":
        return read_coco(path)
    if fmt == "yolo":
        return read_yolo(path, classes)
    raise DataError(f"{path}: unknown detection data format {fmt!r}; known formats: {', '.join(FORMATS)}")
