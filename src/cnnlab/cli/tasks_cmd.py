"""`cnnlab tasks`: the registered tasks, the metrics each logs (with direction) and its default monitor."""

from __future__ import annotations

import argparse

from cnnlab import tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    for name in tasks.list_tasks():
        cls = tasks.get_task_class(name)
        metrics = ", ".join(
            f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)" for metric, mode in cls.metrics.items()
        )
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name}: {summary}")
        print(f"  metrics: {metrics}")
        print(f"  default monitor: {cls.default_monitor}; exports: {', '.join(cls.export_outputs)}")
    return 0
