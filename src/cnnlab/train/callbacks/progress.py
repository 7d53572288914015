"""A progress bar per epoch with running loss, accuracy and images/s."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from cnnlab.train.callbacks.base import Callback


class ProgressBar(Callback):
    # Reading the running loss forces a device sync; doing it every 25 steps keeps the bar live at no cost.
    refresh_every = 25
    main_process_only = True

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.bar: tqdm | None = None

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        self.start, self.images = time.perf_counter(), 0

    def on_batch_end(self, trainer, step: int, batch_size: int) -> None:
        self.images += batch_size
        if self.bar is None:
            return
        if step % self.refresh_every == 0 or step == trainer.steps_per_epoch:
            running = {name: f"{value:.4f}" for name, value in trainer.running_metrics().items()}
            rate = self.images / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix(**running, img_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(step - self.bar.n)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        parts = [f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith(("train_", "val_"))]
        tqdm.write(
            f"epoch {epoch}/{self.epochs}  " + "  ".join(parts) + f"  ({metrics['epoch_seconds']:.1f}s)",
            file=sys.stderr,
        )
