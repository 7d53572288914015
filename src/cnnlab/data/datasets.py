"""Named data sets: `--data mnist` reads the copy shipped in the package; `fashion-mnist`, `kmnist`, `cifar10` and
`cifar100` are downloaded once into a cache folder and read from there by cnnlab's own idx and cifar readers.

Downloads go through torchvision's dataset code: the URLs, mirrors and MD5 checksums of its dataset classes and its
`download_url`, which verifies each file's MD5 (so a truncated or tampered download is never read). Files land in a
hidden staging folder that is renamed into place only once every file is verified, so an interrupted download
leaves nothing that looks complete. Offline, the error says what to fetch and where to put it.

The cache folder is `$CNNLAB_DATA`, else `$XDG_CACHE_HOME/cnnlab`, else `~/.cache/cnnlab`; each set has its own
sub-folder (`~/.cache/cnnlab/cifar10`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cnnlab.errors import DataError
from cnnlab.io import atomic_write_text


@dataclass(frozen=True)
class NamedDataset:
    """A data set cnnlab can fetch by name: the torchvision class that knows its files, and their layout."""

    name: str
    torchvision_class: str  # in torchvision.datasets; holds the URLs and MD5s
    layout: str  # "idx": the class's `resources` from its `mirrors`; "cifar": one tar.gz extracted
    files: tuple[str, ...]  # what a complete copy holds, relative to the set's cache folder
    description: str


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
_IDX_FILES += ("t10k-labels-idx1-ubyte.gz",)
_CIFAR10_FILES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
_CIFAR10_FILES += ("cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta")
_CIFAR100_FILES = ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta")

NAMED_DATASETS = {
    spec.name: spec
    for spec in (
        NamedDataset("mnist", "MNIST", "idx", _IDX_FILES, "handwritten digits, 28x28 grey (shipped, 11 MB)"),
        NamedDataset("fashion-mnist", "FashionMNIST", "idx", _IDX_FILES, "Zalando garments, 28x28 grey (30 MB)"),
        NamedDataset("kmnist", "KMNIST", "idx", _IDX_FILES, "Kuzushiji (cursive Japanese) letters, 28x28 (20 MB)"),
        NamedDataset("cifar10", "CIFAR10", "cifar", _CIFAR10_FILES, "10 classes of photos, 32x32 RGB (170 MB)"),
        NamedDataset("cifar100", "CIFAR100", "cifar", _CIFAR100_FILES, "100 classes of photos, 32x32 RGB (170 MB)"),
    )
}
_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def is_named_dataset(name: str | os.PathLike) -> bool:
    """Whether `name` is one of NAMED_DATASETS (or an alias such as `fashion_mnist`, `CIFAR-10`); imports nothing."""
    return _canonical(os.fspath(name)) in NAMED_DATASETS


def cache_root() -> Path:
    """Where downloaded data sets live: $CNNLAB_DATA, else $XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab."""
    if os.environ.get("CNNLAB_DATA"):
        return Path(os.environ["CNNLAB_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "cnnlab"


def mnist_path() -> Path:
    """The MNIST idx files shipped inside the package (`cnnlab/datasets/mnist`)."""
    folder = Path(str(resources.files("cnnlab.datasets").joinpath("mnist")))
    if not (folder / _IDX_FILES[0]).is_file():
        raise DataError(f"{folder}: the MNIST files shipped with cnnlab are missing; reinstall cnnlab")
    return folder


def resolve_dataset(name: str) -> Path:
    """The folder holding the named data set, downloading it into the cache the first time.

    Raises:
        DataError: the name is unknown, or the set is not cached and cannot be downloaded (the message says
            which files to fetch from where, and the folder to put them in).
    """
    key = _canonical(name)
    if key not in NAMED_DATASETS:
        raise DataError(f"{name}: not a data path nor a named data set ({', '.join(NAMED_DATASETS)})")
    spec = NAMED_DATASETS[key]
    if key == "mnist":
        try:
            return mnist_path()
        except DataError:  # a trimmed install: fetch it like the others
            pass
    folder = cache_root() / key
    missing = [name for name in spec.files if not (folder / name).is_file()]
    if not missing:
        return folder
    if folder.exists():
        raise DataError(
            f"{folder}: {key} is incomplete (no {missing[0]}); remove the folder to download it again, "
            f"or put the missing files there"
        )
    return _download(spec, folder)


def _download(spec: NamedDataset, folder: Path) -> Path:
    """Download into a staging folder beside `folder`, verify, then rename it into place."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".partial", dir=folder.parent))
    except OSError as error:
        raise DataError(f"{folder.parent}: cannot create the data cache ({error.strerror or error})") from None
    try:
        print(f"cnnlab: downloading {spec.name} into {_shown(folder)} (once)", file=sys.stderr)
        dataset_class = _torchvision_class(spec)
        try:
            _fetch(spec, dataset_class, staging)
        except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError; a bad MD5 a RuntimeError
            raise DataError(_offline_message(spec, dataset_class, folder, error)) from None
        _place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _torchvision_class(spec: NamedDataset) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, spec.torchvision_class)


def _fetch(spec: NamedDataset, dataset_class: type, staging: Path) -> None:
    from torchvision.datasets import utils

    if spec.layout == "cifar":
        utils.download_url(dataset_class.url, str(staging), dataset_class.filename, dataset_class.tgz_md5)
        utils.extract_archive(str(staging / dataset_class.filename), str(staging), remove_finished=True)
    else:
        for filename, md5 in dataset_class.resources:
            _fetch_from_mirrors(utils, dataset_class.mirrors, filename, md5, staging)
        if spec.name != "mnist":  # MNIST's digits are the idx reader's default; the others' names are its classes
            atomic_write_text(staging / "classes.txt", "".join(f"{name}\n" for name in dataset_class.classes))
    missing = [name for name in spec.files if not (staging / name).is_file()]
    if missing:
        raise RuntimeError(f"the download holds no {missing[0]}")


def _fetch_from_mirrors(utils, mirrors: list[str], filename: str, md5: str, staging: Path) -> None:
    """The first mirror that serves the file with the right MD5; the last mirror's error otherwise."""
    for i, mirror in enumerate(mirrors):
        try:
            utils.download_url(f"{mirror}{filename}", str(staging), filename, md5)
            return
        except (OSError, RuntimeError):
            if i == len(mirrors) - 1:
                raise


def _place(staging: Path, folder: Path) -> None:
    """Rename the verified download into place; another process that finished first wins, its copy is as good."""
    try:
        os.replace(staging, folder)
    except OSError as error:
        if not folder.is_dir():
            raise DataError(f"{folder}: cannot move the download into place ({error.strerror or error})") from None


def _shown(path: Path) -> str:
    """`~/.cache/cnnlab/cifar10` rather than the full home path, as a user would type it."""
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + os.sep) else text


def _offline_message(spec: NamedDataset, dataset_class: type, folder: Path, error: BaseException) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    where = _shown(folder)
    if spec.layout == "cifar":
        fetch = f"download {dataset_class.filename} from {dataset_class.url} and extract it into {where}"
    else:
        names = ", ".join(filename for filename, _ in dataset_class.resources)
        fetch = f"download {names} from {dataset_class.mirrors[0]} into {where}"
    return (
        f"{spec.name}: not in {where} and the download failed ({type(error).__name__}: {reason}); {fetch} "
        "(CNNLAB_DATA sets another cache folder)"
    )


def dataset_path(path: str | os.PathLike) -> Path:
    """`path` itself when it exists (a folder called `mnist` in the working directory wins), else the folder of
    the data set it names; any other path is returned as is for the readers to report."""
    if not Path(path).exists() and is_named_dataset(path):
        return resolve_dataset(os.fspath(path))
    return Path(path)
