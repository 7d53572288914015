"""`preflight(config)`: the mistakes a config can show without reading data, refused before the data is read.

Reading a data set takes seconds to minutes (full MNIST 1.2 s on a 2-core machine, a folder of photos far
longer); a mistyped model name or data path found only after that wastes the wait on every try. Each check
here is cheap (0.6 ms for MNIST and lenet5_modern): a registry lookup, a small YAML file, a path's existence.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

from cnnlab.errors import ConfigError, DataError
from cnnlab.train.config import TrainConfig

# Builder arguments the task sets from the data; as model options they would clash.
BUILT_BY_TASK = ("num_classes", "in_channels")


def preflight(
    config: TrainConfig, *, check_task: bool = True, check_model: bool = True, check_data: bool = True
) -> None:
    """Raise the one-line error a run of `config` would meet later, for what can be known before data is read.

    Args:
        check_task, check_model, check_data: False where `build_run` was handed a task, a model or data of its
            own, so that the config's field is not what the run uses.

    Raises:
        ConfigError: an unknown task, an unknown zoo model or model option, a layer-list file that is not one.
        DataError: a data or test-data path that does not exist (and is no named data set).
    """
    names: tuple[str, ...] = ()
    if check_task:
        from cnnlab import tasks

        names = tasks.get_task_class(config.task).known_data_names
    if check_model:
        check_model_field(config)
    if check_data:
        check_data_paths(config, names)


def check_model_field(config: TrainConfig) -> None:
    """The model a run builds: inline layers, a YAML layer-list file that holds `layers:`, or a zoo name + options."""
    from cnnlab.train.setup import model_spec

    spec = model_spec(config)  # reads (and checks) a layer-list file
    if "name" in spec:
        _check_zoo_model(spec["name"], spec["options"])


def _check_zoo_model(name: str, options: dict) -> None:
    """Options the builder takes: `--model-options widht=2` is named with the options there are."""
    from cnnlab.models import get_entry

    signature = inspect.signature(get_entry(name).builder)
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # a builder that takes anything: only building it can tell
    known = [p for p in parameters if p not in BUILT_BY_TASK]
    for key in options:
        if key not in parameters or key in BUILT_BY_TASK:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"model {name!r} has no option {key!r}{hint}; its options: {', '.join(known) or 'none'}")


def check_data_paths(config: TrainConfig, task_names: tuple[str, ...] = ()) -> None:
    """`data` and `test_data` exist as paths, or name a data set cnnlab (or the task) knows (`mnist`, `digits`)."""
    if not config.data:
        raise ConfigError("data: no data set given; pass --data PATH (or `data:` in the config)")
    if config.data in task_names and not Path(config.data).exists():
        return
    _check_data_path(config.data, "data")
    if config.test_data:
        _check_data_path(config.test_data, "test data")


def _check_data_path(text: str, what: str) -> None:
    if Path(text).exists() or _is_named_dataset(text):
        return
    raise DataError(f"{text}: {what} path does not exist")


def _is_named_dataset(name: str) -> bool:
    """Named data sets (`--data mnist`) where this version of cnnlab has them."""
    try:
        from cnnlab.data import datasets
    except ImportError:
        return False
    is_named = getattr(datasets, "is_named_dataset", None)
    return bool(is_named(name)) if is_named is not None else False
