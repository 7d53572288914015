"""What `pip install cnnlab` alone must bring: MNIST and the example configs as package data, configs found by name,
a licence, and one-line hints naming the extra a command needs. (The clean-venv install itself is too slow for the
suite; these check what it relies on.)"""

from __future__ import annotations

import sys
import warnings
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab import tasks
from cnnlab.cli import main
from cnnlab.config import load_config
from cnnlab.data import is_named_dataset
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.examples import find_config, list_examples
from cnnlab.export import exporters
from cnnlab.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"]
MNIST_FILES += ["train-labels-idx1-ubyte.gz"]
EXAMPLES = [
    "custom_net",
    "detect_digits",
    "detect_raccoon",
    "faces_olivetti",
    "kim_cnn_layers",
    "lenet5_mnist",
    "lenet5_modern_mnist",
    "pneumonia_mnist",
    "resnet20_cifar10",
]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_mnist_is_package_data_of_11_megabytes():
    folder = resources.files("cnnlab.datasets").joinpath("mnist")
    sizes = {name: len(folder.joinpath(name).read_bytes()) for name in MNIST_FILES}
    assert sizes["train-images-idx3-ubyte.gz"] == 9912422 and sizes["t10k-labels-idx1-ubyte.gz"] == 4542
    assert 11_000_000 < sum(sizes.values()) < 12_000_000


def test_example_configs_are_package_data():
    names = sorted(p.name for p in resources.files("cnnlab.examples").iterdir() if p.name.endswith(".yaml"))
    assert names == [f"{name}.yaml" for name in EXAMPLES]


def test_pyproject_ships_the_data_the_examples_and_the_licence():
    project = _pyproject()
    globs = project["tool"]["setuptools"]["package-data"]["cnnlab"]
    assert "datasets/mnist/*.gz" in globs and "examples/*.yaml" in globs
    assert project["project"]["license"] == "MIT" and project["project"]["license-files"] == ["LICENSE"]
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "the cnnlab authors" in licence


def test_repository_examples_are_links_to_the_packaged_copies():
    for name in EXAMPLES:
        link = REPO / "examples" / f"{name}.yaml"
        assert link.is_symlink(), link
        assert link.resolve() == (REPO / "src" / "cnnlab" / "examples" / f"{name}.yaml").resolve()


def test_packaged_training_configs_name_their_data_set_and_load():
    for example in list_examples():
        if example.is_layer_list:
            continue
        values = yaml.safe_load(example.path.read_text(encoding="utf-8"))
        if (
            "data" not in values
        ):  # a recipe for the user's data (detect_raccoon, faces_olivetti, pneumonia_mnist): --data is required
            assert values.get("task") in ("detection", "faces") or example.name == "pneumonia_mnist", example.name
            continue
        data = values["data"]
        known = tasks.get_task_class(values.get("task", "classification")).known_data_names
        assert is_named_dataset(data) or data in known, f"{example.name}: data {data!r} is not a named set"
        assert load_config(TrainConfig, find_config(example.name)).data == data


def test_every_example_has_a_one_line_description():
    descriptions = {example.name: example.description for example in list_examples()}
    assert descriptions["lenet5_mnist"].startswith("The main job")
    assert all(descriptions.values()) and not any("\n" in text for text in descriptions.values())


def test_find_config_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = Path(str(resources.files("cnnlab.examples").joinpath("lenet5_mnist.yaml")))
    for typed in ("lenet5_mnist", "lenet5_mnist.yaml", "examples/lenet5_mnist.yaml"):
        assert find_config(typed) == packaged, typed
    assert find_config(None) is None


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5_mnist").write_text("model: lenet5\ndata: mnist\nepochs: 1\n")
    assert find_config("lenet5_mnist") == Path("lenet5_mnist")


def test_an_unknown_config_suggests_the_closest_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"lenet5_mnsit: no such config file nor packaged example \(did you mean"):
        find_config("lenet5_mnsit")
    with pytest.raises(ConfigError, match="examples: custom_net, detect_digits"):
        find_config("some/dir/lenet5_mnist.yaml")  # a path elsewhere is not a name


def test_examples_command_lists_each_with_how_to_run_it(capsys):
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    for name in EXAMPLES:
        assert name in out
    assert "run: cnnlab train --config lenet5_modern_mnist" in out
    assert "run: cnnlab train --model " in out  # custom_net is a layer list: a model, not a config


def test_onnx_export_without_the_extra_says_which_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets when it is absent
    with pytest.raises(CnnlabError, match=r"needs the onnxruntime package; .*pip install 'cnnlab\[export\]'"):
        exporters.export_run(tmp_path / "no-run", "onnx")
    assert main(["export", str(tmp_path / "no-run"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("pip install 'cnnlab[export]'")


@pytest.mark.parametrize(
    "module, package", [("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python_multipart", "python-multipart")]
)
def test_serve_without_the_extra_says_which_to_install(monkeypatch, tmp_path, capsys, module, package):
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["serve", str(tmp_path / "no-run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cnnlab: error: cnnlab serve needs the {package} package; install it with: pip install 'cnnlab[serve]'"
    ]


def test_the_server_page_is_package_data():
    page = resources.files("cnnlab.serve").joinpath("page.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "serve/page.html" in _pyproject()["tool"]["setuptools"]["package-data"]["cnnlab"]


def test_tensorboard_without_the_extra_says_which_to_install(monkeypatch, tmp_path):
    from cnnlab.train.callbacks.logging import TensorBoardLogger

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(
        ConfigError, match=r"^--tensorboard needs the tensorboard package; .*pip install 'cnnlab\[tensorboard\]'$"
    ):
        TensorBoardLogger(tmp_path)


def test_torchscript_export_prints_no_future_warning(tmp_path):
    module, example = torch.nn.Linear(3, 2).eval(), torch.zeros(1, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exporters.export_torchscript(module, example, tmp_path / "m.pt")
        logits = exporters.run_torchscript(tmp_path / "m.pt", example)
    assert logits.shape == (1, 2)
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []
