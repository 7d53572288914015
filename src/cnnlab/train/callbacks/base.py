"""The callback interface: the loop owns the order, callbacks own the side effects (as in Lightning)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.train.loop import Trainer


class Callback:
    """Override what you need. `state_dict` is saved in checkpoints so a resume continues exactly.

    Checkpoints key callback state by `state_key` (default: the class name, numbered when a class appears
    twice). Batch hooks see the step's loss and outputs as `trainer.step_output`. In distributed training
    every process runs the callbacks, except those with `main_process_only = True` (files, progress bars);
    `trainer.is_main` tells a callback whether it is on the process that writes. `state_dict` must hold only
    tensors and plain values (numbers, strings, lists, dicts): checkpoints load with `weights_only=True`.
    """

    main_process_only = False
    state_key: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, step: int, batch_size: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
