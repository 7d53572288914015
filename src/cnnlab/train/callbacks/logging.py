"""Per-epoch metrics to metrics.csv and metrics.jsonl (and TensorBoard when asked)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from cnnlab.errors import ConfigError
from cnnlab.train.callbacks.base import Callback


class MetricsLogger(Callback):
    """Appends one row per epoch; on resume it rewrites the files from the checkpoint's history."""

    def __init__(self, run_dir: str | Path) -> None:
        self.csv_path = Path(run_dir) / "metrics.csv"
        self.jsonl_path = Path(run_dir) / "metrics.jsonl"

    def on_fit_start(self, trainer) -> None:
        self._rewrite(trainer.history)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._rewrite(trainer.history)

    def _rewrite(self, history: list[dict[str, float]]) -> None:
        self.jsonl_path.write_text("".join(json.dumps(row) + "\n" for row in history))
        fields: list[str] = []
        for row in history:
            fields += [key for key in row if key not in fields]
        with self.csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)


class TensorBoardLogger(Callback):
    def __init__(self, run_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError(
                "tensorboard: the tensorboard package is not installed; pip install 'cnnlab[tensorboard]'"
            ) from error

        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            if key != "epoch":
                self.writer.add_scalar(key.replace("_", "/", 1), value, epoch)
        self.writer.flush()

    def on_fit_end(self, trainer) -> None:
        self.writer.close()
