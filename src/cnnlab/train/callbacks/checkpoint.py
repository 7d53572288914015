"""`last.pt` every epoch (atomically) and `best.pt` whenever the monitored metric improves.

Both hold only tensors and plain values, so they load with `torch.load(weights_only=True)`: numpy numbers a
task or callback logs (np.float64 from a metric library) are turned into Python numbers before the save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.io import atomic_save, plain_values
from cnnlab.train.callbacks.base import Callback
from cnnlab.train.callbacks.early_stopping import MetricTracker


class ModelCheckpoint(Callback):
    """Pass the engine's `tracker` so that best.pt is the epoch early stopping restores and results.json names."""

    main_process_only = True

    def __init__(
        self,
        run_dir: str | Path,
        monitor: str = "val_accuracy",
        mode: str = "auto",
        tracker: MetricTracker | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.tracker = tracker or MetricTracker(monitor, mode)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.tracker.update(epoch, metrics):
            best = {
                "model": trainer.unwrapped_model.state_dict(),
                "modules": trainer.extra_modules.state_dict(),
                "epoch": epoch,
                "metrics": metrics,
            }
            atomic_save(plain_values(best), self.run_dir / "best.pt")
        # Runs after every other callback's on_epoch_end, so their state is already this epoch's.
        atomic_save(plain_values(trainer.full_state(epoch)), self.run_dir / "last.pt")

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)
