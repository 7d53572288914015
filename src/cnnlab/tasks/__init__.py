"""Tasks, registered like models: `cnnlab.tasks.create("classification")`, `list_tasks()`.

Each task lives in its own package (`tasks/<task>/`) with its losses, metrics, data specifics and predict;
the engine takes a task from this registry and special-cases none.
"""

from __future__ import annotations

import difflib
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.tasks.base import NoOptions, StepContext, StepOutput, Task, collect

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a Task subclass under its `name` (a duplicate name is an error)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no task name")
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    import cnnlab.tasks.classification  # noqa: F401  (registers itself)
    import cnnlab.tasks.detection.task  # noqa: F401
    import cnnlab.tasks.faces.task  # noqa: F401
    import cnnlab.tasks.text.task  # noqa: F401


def list_tasks() -> list[str]:
    _ensure_loaded()
    return sorted(_TASKS)


def get_task_class(name: str) -> type[Task]:
    _ensure_loaded()
    if name not in _TASKS:
        close = difflib.get_close_matches(name, _TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"task: unknown task {name!r}{hint}; known tasks: {', '.join(sorted(_TASKS))}")
    return _TASKS[name]


def metric_mode(metric: str, task: Task | None = None) -> str | None:
    """A metric's direction ("max"/"min") as its task declares it; without a task, as any registered task does."""
    if task is not None:
        return task.metric_mode(metric)
    _ensure_loaded()
    for cls in _TASKS.values():
        mode = cls.metric_mode(cls.__new__(cls), metric)
        if mode is not None:
            return mode
    return None


def create(name: str, options: dict[str, Any] | None = None) -> Task:
    """A task by name, with its typed options built (and checked) from `options`."""
    from cnnlab.tasks.base import build_options

    cls = get_task_class(name)
    return cls(build_options(cls, options))


__all__ = [
    "NoOptions",
    "StepContext",
    "StepOutput",
    "Task",
    "collect",
    "create",
    "get_task_class",
    "list_tasks",
    "metric_mode",
    "register_task",
]
