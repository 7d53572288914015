"""Example configs shipped inside the package, so `cnnlab train --config lenet5_mnist` works outside the repository.

The YAML files here are the source; the repository's `examples/*.yaml` are symbolic links to them. Each file's first
comment line is its description (`cnnlab examples` lists them), and its data is a named set (`data: mnist`) rather
than a repository path.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    description: str
    is_layer_list: bool  # a model (`--model FILE`), not a training config (`--config NAME`)

    @property
    def command(self) -> str:
        if self.is_layer_list and _starts_with_embedding(self.path):
            return f"cnnlab text train --model {self.path} --data SENTENCES"
        if self.is_layer_list:
            return f"cnnlab train --model {self.path} --data mnist"
        return f"cnnlab train --config {self.name}"


def examples_folder() -> Path:
    return Path(str(resources.files("cnnlab.examples")))


def _description(path: Path) -> str:
    """The first comment line of the file, without its `#`."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            return line.strip().lstrip("#").strip()
    return ""


def list_examples() -> list[Example]:
    """The packaged example configs, by name."""
    paths = sorted(examples_folder().glob("*.yaml"))
    return [Example(path.stem, path, _description(path), _is_layer_list(path)) for path in paths]


def _is_layer_list(path: Path) -> bool:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(content, dict) and "layers" in content


def _starts_with_embedding(path: Path) -> bool:
    """A text net's layer list (token ids in): its first layer is an embedding."""
    layers = yaml.safe_load(path.read_text(encoding="utf-8")).get("layers") or [None]
    first = layers[0]
    return first == "embedding" or (isinstance(first, dict) and "embedding" in first)


def find_config(name_or_path: str | os.PathLike | None) -> Path | None:
    """A config file: the path itself when it exists, else the packaged example of that name (`lenet5_mnist`,
    `lenet5_mnist.yaml`, or the repository's `examples/lenet5_mnist.yaml` typed outside the repository). None stays
    None (no config file: flags alone).

    Raises:
        ConfigError: neither a file nor an example's name (the message lists the examples, with the closest first).
    """
    if name_or_path is None or os.fspath(name_or_path) == "":
        return None
    path = Path(name_or_path)
    if path.exists():
        return path
    names = {example.name: example.path for example in list_examples()}
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent in (Path("."), Path("examples")) and stem in names:
        return names[stem]
    close = difflib.get_close_matches(stem, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"{name_or_path}: no such config file nor packaged example ({hint}examples: {', '.join(names)}; "
        "see `cnnlab examples`)"
    )
