"""Per-epoch metrics to metrics.csv and metrics.jsonl (and TensorBoard when asked)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from cnnlab.errors import ConfigError
from cnnlab.io import atomic_write_text
from cnnlab.train.callbacks.base import Callback


class MetricsLogger(Callback):
    """One row per epoch; both files are rewritten (atomically) from the trainer's history, so a resume or a
    kill never leaves a half row."""

    main_process_only = True

    def __init__(self, run_dir: str | Path) -> None:
        self.csv_path = Path(run_dir) / "metrics.csv"
        self.jsonl_path = Path(run_dir) / "metrics.jsonl"

    def on_fit_start(self, trainer) -> None:
        self._rewrite(trainer.history)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._rewrite(trainer.history)

    def _rewrite(self, history: list[dict[str, float]]) -> None:
        atomic_write_text(self.jsonl_path, "".join(json.dumps(row) + "\n" for row in history))
        fields: list[str] = []
        for row in history:
            fields += [key for key in row if key not in fields]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.csv_path, text.getvalue())


class TensorBoardLogger(Callback):
    main_process_only = True

    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError(
                "--tensorboard needs the tensorboard package; install it with: pip install 'cnnlab[tensorboard]'"
            ) from error

        self.writer_class, self.folder = SummaryWriter, Path(run_dir) / "tensorboard"
        self.writer = None

    def on_fit_start(self, trainer) -> None:
        self.writer = self.writer_class(str(self.folder))  # created when training starts, not when built

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        assert self.writer is not None
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(key.replace("_", "/", 1), value, epoch)
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        if self.writer is not None:
            self.writer.close()
