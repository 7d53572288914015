"""Named data sets: the packaged MNIST by name, downloads into the cache (torchvision's downloader faked: there is
no network here), and the one-line message that says what to fetch when the download fails."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import utils as torchvision_utils

from cnnlab.data import datasets as named
from cnnlab.data import detect_format, is_named_dataset, load_dataset, mnist_path, resolve_dataset
from cnnlab.errors import DataError

from .test_readers import idx_bytes, write_cifar10, write_idx

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_DATA", str(folder))
    return folder


class FakeDownloads:
    """Stands in for torchvision's `download_url`: writes what `files` maps each file name to, counts the calls."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.urls = files, []

    def __call__(self, url: str, root: str, filename: str | None = None, md5: str | None = None) -> None:
        self.urls.append(url)
        Path(root, filename).write_bytes(self.files[filename])


def cifar10_archive(tmp_path: Path) -> bytes:
    """A tar.gz laid out as cifar-10-python.tar.gz is (cifar-10-batches-py/...), with 3 images per batch."""
    write_cifar10(tmp_path / "src" / "cifar-10-batches-py", batches=5, per_batch=3)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buffer.getvalue()


def idx_files(tmp_path: Path, count: int = 20) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        write_idx(folder, images, (np.arange(count) % 10).astype(np.uint8), prefix=prefix, gz=True)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_names_and_aliases_are_named_but_paths_are_not():
    for name in ("mnist", "fashion-mnist", "fashion_mnist", "FashionMNIST", "kmnist", "cifar10", "CIFAR-100"):
        assert is_named_dataset(name), name
    for path in ("data/mnist", "mnist/", "./cifar10", "images", ""):
        assert not is_named_dataset(path), path


def test_mnist_by_name_reads_the_packaged_copy_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset("mnist") == mnist_path()
    assert mnist_path().parts[-3:] == ("cnnlab", "datasets", "mnist")
    splits = load_dataset("mnist", val_split=0.0)
    assert (len(splits.train), len(splits.test)) == (60000, 10000)
    assert splits.source == str(mnist_path())


def test_data_mnist_in_the_repository_is_a_link_to_the_packaged_copy():
    link = REPO / "data" / "mnist"
    assert link.is_symlink() and os.readlink(link) == "../src/cnnlab/datasets/mnist"
    assert link.resolve() == mnist_path().resolve()
    assert detect_format(link) == "idx"  # the readers follow a link that IS the data folder
    listed = subprocess.run(["git", "ls-files", "-s", "data/mnist"], cwd=REPO, capture_output=True, text=True)
    entries = {line.split("\t")[1]: line.split()[0] for line in listed.stdout.splitlines()}
    if "data/mnist" in entries:  # git holds the link itself (mode 120000), not a copy of the files behind it
        assert entries == {"data/mnist": "120000"}


def test_an_existing_folder_wins_over_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_idx(tmp_path / "mnist", np.zeros((12, 28, 28), np.uint8), np.arange(12, dtype=np.uint8) % 10)
    assert len(load_dataset("mnist", val_split=0.0).train) == 12


def test_cifar10_downloads_once_into_the_cache_then_reads_from_it(tmp_path, cache, monkeypatch):
    fake = FakeDownloads({"cifar-10-python.tar.gz": cifar10_archive(tmp_path)})
    monkeypatch.setattr(torchvision_utils, "download_url", fake)
    splits = load_dataset("cifar10", val_split=0.0)
    assert fake.urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (len(splits.train), len(splits.test), splits.format) == (15, 3, "cifar")
    assert splits.classes[:2] == ["airplane", "automobile"]
    assert sorted(p.name for p in cache.iterdir()) == ["cifar10"]  # no staging folder, no archive left over
    assert not (cache / "cifar10" / "cifar-10-python.tar.gz").exists()
    assert len(load_dataset("CIFAR-10", val_split=0.0).train) == 15
    assert len(fake.urls) == 1


def test_fashion_mnist_downloads_its_idx_files_and_names_its_classes(tmp_path, cache, monkeypatch):
    fake = FakeDownloads(idx_files(tmp_path))
    monkeypatch.setattr(torchvision_utils, "download_url", fake)
    splits = load_dataset("fashion-mnist", val_split=0.0)
    assert len(fake.urls) == 4 and all(url.startswith("http://fashion-mnist.s3") for url in fake.urls)
    assert (len(splits.train), len(splits.test)) == (20, 20)
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"
    assert resolve_dataset("fashion_mnist") == cache / "fashion-mnist"
    assert len(fake.urls) == 4


def test_a_failing_mirror_falls_back_to_the_next(tmp_path):
    calls = []

    class Utils:
        @staticmethod
        def download_url(url, root, filename, md5):
            calls.append(url)
            if url.startswith("https://first"):
                raise urllib.error.URLError("unreachable")
            Path(root, filename).write_bytes(b"x")

    named._fetch_from_mirrors(Utils, ["https://first/", "http://second/"], "f.gz", "0" * 32, tmp_path)
    assert calls == ["https://first/f.gz", "http://second/f.gz"] and (tmp_path / "f.gz").read_bytes() == b"x"


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        RuntimeError("File not found or corrupted."),
    ],
)
def test_offline_the_message_says_what_to_fetch_and_where(cache, monkeypatch, failure):
    def offline(url, root, filename=None, md5=None):
        Path(root, filename).write_bytes(b"partial")  # a download cut short must leave nothing behind
        raise failure

    monkeypatch.setattr(torchvision_utils, "download_url", offline)
    with pytest.raises(DataError) as error:
        load_dataset("cifar10")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"cifar10: not in {cache / 'cifar10'} and the download failed (")
    assert str(failure) in message
    assert "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert f"extract it into {cache / 'cifar10'}" in message
    assert list(cache.iterdir()) == []


def test_offline_idx_message_lists_the_four_files(cache, monkeypatch):
    def offline(url, root, filename=None, md5=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision_utils, "download_url", offline)
    with pytest.raises(DataError, match=r"download train-images-idx3-ubyte.gz, .*t10k-labels-idx1-ubyte.gz from http"):
        resolve_dataset("kmnist")


def test_an_incomplete_cache_folder_is_reported_not_downloaded_over(cache, monkeypatch):
    (cache / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (cache / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    monkeypatch.setattr(torchvision_utils, "download_url", pytest.fail)
    with pytest.raises(DataError, match=r"cifar10 is incomplete \(no cifar-10-batches-py/data_batch_2\); remove"):
        resolve_dataset("cifar10")


def test_cache_folder_defaults_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert named.cache_root() == tmp_path / ".cache" / "cnnlab"
    assert named._shown(named.cache_root() / "cifar10") == "~/.cache/cnnlab/cifar10"


def test_unknown_name_is_a_missing_path():
    with pytest.raises(DataError, match="no-such-set: data path does not exist"):
        load_dataset("no-such-set")
    with pytest.raises(DataError, match="not a data path nor a named data set"):
        resolve_dataset("no-such-set")
