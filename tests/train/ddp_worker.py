"""A torchrun worker for tests: trains through the public API and, if asked, dies hard after an epoch.

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_worker.py OUT [KILL_AFTER]
"""

from __future__ import annotations

import os
import signal
import sys

from cnnlab.train import TrainConfig, fit
from cnnlab.train.callbacks import Callback

sys.path.insert(0, os.path.dirname(__file__))
from ddp_settings import config_values  # noqa: E402


class KillAfterEpoch(Callback):
    """SIGKILL rank 0 right after epoch N's checkpoint is written (user callbacks run after the built-in ones)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch: int, metrics: dict) -> None:
        if epoch == self.epoch and trainer.is_main:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from cnnlab.config import build_dataclass

    out, kill_after = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None
    config = build_dataclass(TrainConfig, {**config_values(), "out": out})
    fit(config, overwrite=True, callbacks=[KillAfterEpoch(kill_after)] if kill_after else None)
