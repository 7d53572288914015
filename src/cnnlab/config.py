"""Config flows one way: YAML file -> CLI overrides -> one frozen dataclass.

Nested dataclasses become dotted flags (`--optimizer.lr 0.05`, `--early-stopping.patience 3`),
so every key a YAML file can hold is also a flag, and vice versa.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cnnlab.errors import ConfigError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _flag_name(dotted: str) -> str:
    return "--" + dotted.replace("_", "-")


def parse_mapping(text: str) -> dict[str, Any]:
    """`rotate=15,flip,crop=4` -> {"rotate": 15, "flip": True, "crop": 4} (a value YAML can read)."""
    result: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        result[key.strip()] = yaml.safe_load(value) if sep else True
    return result


def _convert(value: Any, tp: Any, key: str) -> Any:
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config field {key!r} must not be empty")
    origin = typing.get_origin(tp)
    try:
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config field {key!r} must be a mapping, got {value!r}")
            return build_dataclass(tp, value, prefix=key + ".")
        if tp is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered in ("true", "yes", "1", "on"):
                    return True
                if lowered in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if origin in (tuple, list):
            if isinstance(value, str):
                value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
            (item_tp, *_rest) = typing.get_args(tp) or (Any,)
            items = [v if item_tp is Any else _convert(v, item_tp, key) for v in value]
            return tuple(items) if origin is tuple else items
        if origin is dict or tp is dict:
            if isinstance(value, str):
                value = parse_mapping(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"config field {key!r}: cannot read {value!r} as {getattr(tp, '__name__', tp)}") from error
    return value


def build_dataclass(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build `cls` from a nested dict; unknown keys are errors that suggest the closest field."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(sorted(names))}"
            raise ConfigError(f"unknown config field '{prefix}{raw_key}'{hint}")
        kwargs[key] = _convert(value, hints[key], prefix + key)
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        node = tree.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field {part!r} is not a section, cannot set {dotted!r}")
        tree = node
    tree[last] = value


def add_dataclass_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    sections: Mapping[str, str] | None = None,
    help_texts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Add one flag per (nested) field; flags default to 'not given' so YAML values survive.

    Each flag shows its type (the metavar), its default and one line of help; a field's metadata may name
    short aliases (`metadata={"aliases": ["-e"]}`).

    Args:
        sections: dotted field -> the `--help` section it opens; the fields after it (and the nested fields
            of a section such as `optimizer`) stay in that section until the next one opens, so a new field
            lands beside its neighbours. Without it the flags form one list.
        help_texts: dotted field -> one line of help, for fields whose metadata has none.

    Returns:
        The sections by title, so a command can add its own flags to them.
    """
    adder = _FlagAdder(parser, sections or {}, help_texts or {})
    adder.add(cls, prefix)
    return adder.groups


class _FlagAdder:
    """Walks a dataclass tree in field order, opening the `--help` section a field names in `sections`."""

    def __init__(self, parser: argparse.ArgumentParser, sections: Mapping[str, str], help_texts: Mapping[str, str]):
        self.parser, self.sections, self.help_texts = parser, sections, help_texts
        self.target: Any = parser
        self.groups: dict[str, Any] = {}

    def add(self, cls: type, prefix: str) -> None:
        hints = _field_types(cls)
        for field in dataclasses.fields(cls):
            dotted = prefix + field.name
            if dotted in self.sections:
                self._open(self.sections[dotted])
            tp, _ = _unwrap_optional(hints[field.name])
            if dataclasses.is_dataclass(tp):
                self.add(tp, dotted + ".")
            else:
                _add_field(self.target, field, dotted, tp, self.help_texts.get(dotted, ""))

    def _open(self, title: str) -> None:
        if title not in self.groups:
            self.groups[title] = self.parser.add_argument_group(title)
        self.target = self.groups[title]


def _add_field(target, field: dataclasses.Field, dotted: str, tp: Any, fallback_help: str) -> None:
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
    aliases = list(field.metadata.get("aliases", ()))
    help_text = _help_line(field.metadata.get("help") or fallback_help, default, tp)
    if tp is bool:
        flags = [*aliases, _flag_name(dotted)]
        target.add_argument(
            *flags, dest=dotted, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
        )
        return
    metavar = _metavar(tp)
    target.add_argument(
        *aliases, _flag_name(dotted), dest=dotted, default=argparse.SUPPRESS, metavar=metavar, help=help_text
    )
    if "_" in dotted:  # `--batch_size` as YAML spells it works too, without doubling the help
        target.add_argument("--" + dotted, dest=dotted, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _metavar(tp: Any) -> str:
    """The type a flag reads, as `--help` shows it: INT, FLOAT, TEXT, INT,INT (a pair), K=V,..."""
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        item = _metavar(args[0]) if args and args[0] is not Any else "VALUE"
        return f"{item},{item}" if origin is tuple and len(args) == 2 and args[1] is not Ellipsis else f"{item},..."
    if origin is dict or tp is dict:
        return "K=V,..."
    return {int: "INT", float: "FLOAT", str: "TEXT"}.get(tp, "VALUE")


def _default_text(default: Any, tp: Any) -> str:
    if default is None or default == "" or default == {}:
        return "none"  # for an optional switch (`--batch-norm`): the model's own choice
    if tp is bool:
        return "on" if default else "off"
    if isinstance(default, (tuple, list)):
        return ",".join(str(item) for item in default)
    return str(default)


def _help_line(text: str, default: Any, tp: Any) -> str:
    """One line: the field's help, then its default (unless the help already says what the default is)."""
    text = " ".join(str(text).split())
    if "default" not in text:
        suffix = f"default: {_default_text(default, tp)}"
        text = f"{text} ({suffix})" if text else suffix
    return text.replace("%", "%%")  # argparse %-formats help


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The dotted fields of `cls` that were given on the command line, as a nested dict."""
    tree: dict[str, Any] = {}
    for dotted in _dotted_fields(cls):
        if dotted in vars(args):
            _set_dotted(tree, dotted, getattr(args, dotted))
    return tree


def _dotted_fields(cls: type, prefix: str = "") -> list[str]:
    names = []
    hints = _field_types(cls)
    for field in dataclasses.fields(cls):
        tp, _ = _unwrap_optional(hints[field.name])
        if dataclasses.is_dataclass(tp):
            names += _dotted_fields(tp, prefix + field.name + ".")
        else:
            names.append(prefix + field.name)
    return names


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        key = key.replace("-", "_")
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def yaml_syntax_error(path: str | Path, error: yaml.YAMLError) -> ConfigError:
    """One line naming the file, line and column (1-based, as editors count) and what the parser met."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context, begun = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and begun is not None and begun != mark:  # where the unclosed bracket or block began
        context = f"{context} that began at line {begun.line + 1}, column {begun.column + 1}"
    detail = f"{problem} ({context})" if context else problem
    return ConfigError(f"{path}: {where}not valid YAML: {' '.join(str(detail).split())}")


def load_yaml_file(path: str | Path) -> Any:
    """The YAML document in `path` as Python values; every way the file can be wrong is a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a text file (byte {error.start} is not UTF-8); expected YAML") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise yaml_syntax_error(path, error) from error
    except RecursionError as error:
        raise ConfigError(f"{path}: nested too deeply to be a config") from error


def read_yaml(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config or layer-list file as a dict of fields (an empty file is an empty config).

    Args:
        required: fields the file must hold, e.g. ("model", "data") for a run's saved config.yaml, which
            `cnnlab train` writes in full: then an empty file or a list is an error, never read as the defaults.
    """
    data = load_yaml_file(path)
    if required:
        _check_required(data, Path(path), required)
    if data is None:
        return {}
    if isinstance(data, list):
        return {"layers": data}  # a bare layer list (`- conv: {...}` at the top level) is a net
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config fields (or a list of layers) at the top level, "
            f"got {type(data).__name__} {data!r:.40}"
        )
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _check_required(data: Any, path: Path, required: tuple[str, ...]) -> None:
    if data is None:
        raise ConfigError(f"{path}: empty file (expected config fields)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields, got a {type(data).__name__}")
    keys = {str(k).replace("-", "_") for k in data}
    missing = [key for key in required if key not in keys]
    if missing:
        raise ConfigError(f"{path}: missing field {missing[0]!r}")


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """YAML file (optional) then overrides (nested dict) -> a `cls` instance."""
    values = read_yaml(path) if path else {}
    values = deep_merge(_normalise_keys(values), _normalise_keys(overrides or {}))
    if path:
        try:
            return build_dataclass(cls, values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error
    return build_dataclass(cls, values)


def _normalise_keys(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        str(k).replace("-", "_"): (_normalise_keys(v) if isinstance(v, dict) and not _is_free_mapping(k) else v)
        for k, v in tree.items()
    }


def _is_free_mapping(key: str) -> bool:
    # Mappings whose keys are user data (augmentation names, model options), not config fields.
    return key in ("augment", "model_options", "options", "task_options")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    from cnnlab.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
