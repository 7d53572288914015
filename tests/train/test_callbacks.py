import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.tasks import Task
from cnnlab.train.callbacks import EarlyStopping, MetricTracker, infer_mode


class FakeTrainer:
    def __init__(self):
        self.unwrapped_model = nn.Linear(1, 1)
        self.should_stop = False
        self.restored_epoch = None


def run_sequence(values, **kwargs):
    trainer, stopper = FakeTrainer(), EarlyStopping(**kwargs)
    for epoch, value in enumerate(values, start=1):
        with torch.no_grad():
            trainer.unwrapped_model.weight.fill_(float(epoch))
        stopper.on_epoch_end(trainer, epoch, {"val_loss": value, "val_accuracy": -value})
        if trainer.should_stop:
            break
    stopper.on_fit_end(trainer)
    return trainer, stopper, epoch


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "stop_epoch", "best_epoch"),
    [
        ([6, 5, 5, 5, 5, 5], 3, 0.0, 5, 2),  # Lightning's scripted case: no improvement after epoch 2
        ([5, 4, 3, 2, 1], 2, 0.0, 5, 5),  # always improving: never stops
        ([5, 4.95, 4.9, 4.85, 4.8], 2, 0.1, 3, 1),  # improvements smaller than min_delta do not count
        ([3, 2, 4, 1, 5, 6, 7], 2, 0.0, 6, 4),  # patience resets on improvement
    ],
)
def test_scripted_sequences(values, patience, min_delta, stop_epoch, best_epoch):
    trainer, stopper, last = run_sequence(values, monitor="val_loss", patience=patience, min_delta=min_delta)
    assert last == stop_epoch
    assert stopper.tracker.best_epoch == best_epoch
    # the best epoch's weights are back in the model
    assert trainer.unwrapped_model.weight.item() == best_epoch
    assert trainer.restored_epoch == best_epoch


def test_max_mode_from_metric_name_and_restore_without_stopping():
    trainer, stopper, last = run_sequence([3, 1, 2], monitor="val_accuracy", patience=None)
    assert stopper.tracker.mode == "max" and last == 3
    assert trainer.unwrapped_model.weight.item() == 2  # accuracy = -loss is best at epoch 2


def test_state_survives_a_resume():
    trainer, first, _ = run_sequence([6, 5, 5], monitor="val_loss", patience=3)
    second = EarlyStopping(monitor="val_loss", patience=3)
    second.load_state_dict(first.state_dict())
    assert second.wait == 1 and second.tracker.best_epoch == 2
    second.on_epoch_end(trainer, 4, {"val_loss": 5})
    assert trainer.should_stop is False and second.wait == 2
    second.on_epoch_end(trainer, 5, {"val_loss": 5})
    assert trainer.should_stop is True  # patience counted across the resume, as in one run


def test_missing_metric_is_an_error_listing_what_is_logged():
    stopper = EarlyStopping(monitor="val_accuracy", patience=1)
    with pytest.raises(
        ConfigError, match="'val_accuracy' is not logged by this run; logged metrics: train_loss, val_loss"
    ):
        stopper.on_epoch_end(FakeTrainer(), 1, {"val_loss": 1.0, "train_loss": 1.0})


def test_direction_comes_from_the_task_not_the_name():
    assert infer_mode("val_loss") == "min" and infer_mode("val_accuracy") == "max"
    assert infer_mode("train_top5_accuracy") == "max"

    class DiceTask(Task):
        name = "dice-demo"
        metrics = {"dice_error": "min", "loss": "min"}

    # "val_dice_error" reads like nothing a name rule knows (nor any registered task); its task says lower is better.
    assert MetricTracker("val_dice_error", task=DiceTask()).mode == "min"
    with pytest.raises(ConfigError, match="direction is unknown"):
        MetricTracker("val_dice_error")
    assert MetricTracker("val_dice_error", mode="min").mode == "min"


def test_one_tracker_shared_by_early_stopping_and_checkpoint(tmp_path):
    from cnnlab.train.callbacks import ModelCheckpoint

    tracker = MetricTracker("val_loss", min_delta=0.1)
    trainer = FakeTrainer()
    trainer.extra_modules = nn.ModuleDict()
    trainer.full_state = lambda epoch: {"epoch": epoch}
    stopper, saver = EarlyStopping(patience=5, tracker=tracker), ModelCheckpoint(tmp_path, tracker=tracker)
    for epoch, value in enumerate([5, 4.95, 4.8, 4.75], start=1):  # only epoch 3 beats the best by > min_delta
        for callback in (stopper, saver):
            callback.on_epoch_end(trainer, epoch, {"val_loss": value})
    stopper.on_fit_end(trainer)
    assert tracker.best_epoch == 3 and trainer.restored_epoch == 3
    assert torch.load(tmp_path / "best.pt", weights_only=False)["epoch"] == 3
