"""`build_run(config)`: a task from the registry, its data and model, the run folder and a ready Trainer.

Nothing here knows what a task computes: the engine asks the task for data, model, preprocessing, batches,
steps and metrics, and wires the rest (optimiser, schedule, precision, callbacks, checkpoints, processes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab import tasks
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError, RunError
from cnnlab.io import atomic_write_text
from cnnlab.tasks.base import StepContext, Task, collect, concatenate
from cnnlab.train import callbacks as cb
from cnnlab.train.checkpoint import load_training_state, seed_everything
from cnnlab.train.config import AUTO_LR, TrainConfig
from cnnlab.train.distributed import Distributed, default_threads
from cnnlab.train.loop import StepSettings, Trainer
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.preflight import preflight
from cnnlab.train.regularization import WeightPenalty
from cnnlab.train.runfolder import RunLock, lock_run_dir, run_dir_for
from cnnlab.train.setup import count_parameters, model_spec, write_run_files


@dataclass
class TrainingRun:
    """Everything a training run is made of, built and ready: `train(run)`, then `evaluate(run)`."""

    config: TrainConfig
    task: Task
    data: Any
    meta: dict[str, Any]
    model: nn.Module
    context: StepContext
    trainer: Trainer
    run_dir: Path
    distributed: Distributed | None
    monitor: str
    lock: RunLock | None = None

    @property
    def is_main(self) -> bool:
        return self.distributed is None or self.distributed.is_main

    def close(self) -> None:
        """Release the run folder's lock and leave the process group (fit does this when it ends)."""
        if self.lock is not None:
            self.lock.release()
        if self.distributed is not None:
            self.distributed.close()


def _task_for(config: TrainConfig, task: Task | None) -> Task:
    task = task or tasks.create(config.task, config.task_options)
    if hasattr(task, "configure"):
        task.configure(config)
    return task


def _set_threads(config: TrainConfig, distributed: Distributed | None) -> None:
    if config.threads:
        torch.set_num_threads(config.threads)
    elif distributed is not None:
        torch.set_num_threads(default_threads(distributed.local_world_size))


def _resolve_monitor(config: TrainConfig, task: Task, has_validation: bool) -> str:
    monitor = config.early_stopping.monitor or config.monitor or task.default_monitor
    return monitor if has_validation else monitor.replace("val_", "train_")


def _run_meta(config: TrainConfig, task: Task, data, spec, model_meta, preprocess, params, device, monitor):
    # Absolute paths of the files the config names, so that evaluate, report and resume find them from any working
    # directory (cnnlab.runfiles.read_run_config). A data set name (`mnist`) is no existing path: it stays a name.
    paths = {
        key: str(Path(value).resolve())
        for key in ("data", "test_data", "model")
        if (value := getattr(config, key)) and (Path(value).is_file() if key == "model" else Path(value).exists())
    }
    return {
        "task": {**task.run_meta(), "reference_loss": task.reference_loss(model_meta)},
        "model": spec,
        **model_meta,
        **task.preprocess_meta(preprocess),
        "parameters": params,
        "device": str(device),
        "monitor": monitor,
        "data": {**task.data_meta(data), "paths": paths},
        "regularization": {
            "augment": dict(config.augment),
            "dropout": spec.get("options", {}).get("dropout", config.dropout),
            "batch_norm": config.batch_norm,
            "weight_decay": config.optimizer.weight_decay,
            "l1": config.l1,
            "l2": config.l2,
            "label_smoothing": config.label_smoothing,
            "early_stopping": config.early_stopping.patience is not None,
        },
    }


def _run_dir(config, resume, overwrite, distributed: Distributed | None) -> Path:
    """Rank 0 chooses the folder (nothing is written yet) and tells the others."""
    base = Path(resume) if resume else Path(config.out or Path("runs") / Path(config.model).stem)
    if distributed is None:
        return run_dir_for(base, overwrite, bool(resume))
    chosen = str(run_dir_for(base, overwrite, bool(resume))) if distributed.is_main else None
    return Path(distributed.broadcast(chosen))


# What a resume may change: how long to train and how the machine runs it; anything else would make the
# continued run a different experiment from the one its first epochs belong to.
RESUMABLE_FIELDS = {
    "epochs", "early_stopping.patience", "progress", "threads", "workers", "tensorboard", "device",
    "eval_batch_size", "compile", "out", "max_image_pixels", "quiet",
}  # fmt: skip
MODEL_FIELDS = {"task", "task_options", "model", "model_options", "layers", "dropout", "batch_norm"}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("augment", "model_options", "task_options"):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def with_saved_paths(config: TrainConfig, run_dir: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """`config` with the absolute paths its run folder recorded (run.json `data.paths`) for the fields not
    overridden, so that a resume reads the run's data and model file from any working directory."""
    from dataclasses import replace

    from cnnlab.runfiles import PATH_FIELDS, read_run_config

    resolved = read_run_config(run_dir)
    kept = {key: resolved[key] for key in PATH_FIELDS if key in resolved and key not in (overrides or {})}
    return replace(config, **kept)


def _differs(key: str, given: Any, saved: Any) -> bool:
    """Whether a resume changes a field; paths differ only when they lead to different files (`data/mnist` from
    the project folder is the absolute path run.json recorded)."""
    if key in ("data", "test_data", "model") and given and saved and Path(given).exists() and Path(saved).exists():
        return Path(given).resolve() != Path(saved).resolve()
    return given != saved


def _moved_data(saved: dict[str, Any]) -> set[str]:
    """The data fields whose saved path is gone: a resume may point them at the data's new place."""
    from cnnlab.data import is_named_dataset

    return {
        key
        for key in ("data", "test_data")
        if saved.get(key) and not Path(saved[key]).exists() and not is_named_dataset(saved[key])
    }


def check_resume_config(config: TrainConfig, run_dir: Path) -> None:
    """Refuse, in one line and before anything is written, a resume that changes the experiment."""
    from cnnlab.config import load_config, to_dict

    saved = _flat(to_dict(with_saved_paths(load_config(TrainConfig, run_dir / "config.yaml"), run_dir)))
    given = _flat(to_dict(config))
    resumable = RESUMABLE_FIELDS | _moved_data(saved)
    changed = [key for key in given if key not in resumable and _differs(key, given[key], saved.get(key))]
    if not changed:
        return
    key = next((k for k in changed if k in MODEL_FIELDS), changed[0])
    what = "the model" if key in MODEL_FIELDS else f"{key!r}"
    raise ConfigError(
        f"{run_dir}: a resume cannot change {what} ({key} was {saved.get(key)!r}, now {given[key]!r}); "
        f"resume with the saved config, or train a new run (cnnlab train --config {run_dir / 'config.yaml'} "
        "--out NEW_FOLDER ...)"
    )


def _optimizer(model: nn.Module, modules: nn.ModuleDict, config: TrainConfig) -> torch.optim.Optimizer:
    trained = nn.ModuleList([model, modules]) if len(modules) else model
    return build_optimizer(trained, config.optimizer)


def _validator(task: Task, data, config: TrainConfig, model_meta, context, distributed):
    if data.val is None:
        return None
    split = data.val
    if distributed is not None:  # a contiguous part per rank; the parts are gathered back in rank order
        from cnnlab.data.loader import shard_bounds

        start, stop = shard_bounds(len(split), distributed.shard)
        split = split.subset(torch.arange(start, stop))

    def validate(model: nn.Module) -> dict[str, float]:
        outputs, targets = collect(task, model, task.eval_batches(split, config.eval_batch_size), context)
        if distributed is not None:
            parts = distributed.gather((outputs, targets))
            outputs, targets = concatenate([p[0] for p in parts]), concatenate([p[1] for p in parts])
        return {f"val_{k}": v for k, v in task.validation_metrics(outputs, targets, model_meta).items()}

    return validate


def _callbacks(config, run_dir, tracker, user_callbacks, is_main) -> list[cb.Callback]:
    es = config.early_stopping
    built: list[cb.Callback] = [cb.MetricsLogger(run_dir)]
    if config.tensorboard:
        built.append(cb.TensorBoardLogger(run_dir))
    if not config.quiet:  # the epoch lines stay without --progress; a bar is drawn only on a terminal
        built.append(cb.ProgressBar(config.epochs, bar=None if config.progress else False))
    # One tracker picks the best epoch for early stopping, best.pt, the restored weights and results.json.
    built.append(cb.EarlyStopping(patience=es.patience, tracker=tracker))
    built.append(cb.ModelCheckpoint(run_dir, tracker=tracker))  # after the others: saves their state too
    built += list(user_callbacks or [])
    return [c for c in built if is_main or not c.main_process_only]


def check_resume(config: TrainConfig, state: dict[str, Any], run_dir: Path, steps_per_epoch: int) -> None:
    """Refuse, in one line, a resume the saved state cannot honour (before anything is written)."""
    done = int(state["epoch"])
    if config.epochs < done:
        raise ConfigError(f"{run_dir}: the run has already trained {done} epochs; --epochs {config.epochs} is fewer")
    total_steps = (state.get("scheduler") or {}).get("total_steps")
    if config.schedule.name.lower() == "onecycle" and total_steps is not None:
        planned = total_steps // max(steps_per_epoch, 1)
        if planned != config.epochs:
            raise ConfigError(
                f"{run_dir}: cannot extend a one-cycle run from {planned} to {config.epochs} epochs: the cycle's "
                "length is fixed and its learning rate has already annealed; train a new run instead "
                f"(cnnlab train --config {run_dir / 'config.yaml'} --epochs {config.epochs} --out NEW_FOLDER)"
            )


def build_run(
    config: TrainConfig,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    task: Task | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[cb.Callback] | None = None,
) -> TrainingRun:
    """Build everything a run needs; nothing is trained yet.

    Args:
        data: the task's data object (for classification a `DataSplits`) instead of reading `config.data`,
            so a run can be built from Python without writing data files.
        model: a module to train instead of building `config.model` (run.json then cannot rebuild it).
        task: a Task instance instead of `config.task` from the registry.
        resume: a run folder to continue from its last.pt.
        callbacks: run after the built-in ones (so a checkpoint of the epoch exists when they are called).
    """
    preflight(config, check_task=task is None, check_model=model is None, check_data=data is None)
    task = _task_for(config, task)
    distributed = Distributed.from_environment(config.device)
    _set_threads(config, distributed)
    seed_everything(config.seed, config.deterministic)
    device = distributed.device if distributed is not None else resolve_device(config.device)
    if resume:
        check_resume_config(config, Path(resume))
    state = load_training_state(Path(resume) / "last.pt", map_location=device) if resume else None
    if config.max_image_pixels:
        from cnnlab.data import decode

        decode.MAX_IMAGE_PIXELS = config.max_image_pixels  # decompression-bomb limit for this process
    data = data if data is not None else task.load_data(config)
    if config.optimizer.lr == AUTO_LR:  # the range test first; the run then saves and trains with its number
        from cnnlab.train.lr_find import resolve_learning_rate  # lr_find drives build_run: imported only here

        config = resolve_learning_rate(config, data=data, model=model, task=task)
    model_meta = task.model_meta(data)
    spec = model_spec(config) if model is None else {"custom": type(model).__name__}
    model = (model if model is not None else task.build_model(spec, model_meta)).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    modules = nn.ModuleDict(task.extra_modules(model, model_meta)).to(device)
    preprocess = task.build_preprocess(data).to(device)
    settings = StepSettings(device, config.precision, config.grad_clip)
    context = StepContext(device, preprocess, modules, settings.autocast)
    monitor = _resolve_monitor(config, task, getattr(data, "val", None) is not None)
    tracker = cb.MetricTracker(monitor, config.early_stopping.mode, config.early_stopping.min_delta, task=task)
    generator = torch.Generator().manual_seed(config.seed)
    augment = task.build_augment(config)
    shard = distributed.shard if distributed is not None else None

    def train_batches():
        return task.train_batches(data.train, config, generator, augment, shard)

    steps_per_epoch = _steps_per_epoch(train_batches(), len(data.train), config.batch_size)
    if state is not None:
        check_resume(config, state, Path(resume), steps_per_epoch)
    run_dir = _run_dir(config, resume, overwrite, distributed)
    meta = _run_meta(config, task, data, spec, model_meta, preprocess, count_parameters(model), device, monitor)
    optimizer = _optimizer(model, modules, config)
    scheduler, unit = build_scheduler(optimizer, config.schedule, config.epochs, steps_per_epoch)
    train_model = distributed.wrap(model) if distributed is not None else model
    train_model = torch.compile(train_model) if config.compile else train_model
    trainer = Trainer(
        model=train_model,
        task=task,
        optimizer=optimizer,
        train_batches=train_batches,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        settings=settings,
        context=context,
        # Validation runs the module itself: no DDP collectives, each rank on its own part of the split.
        validate=_validator(task, data, config, model_meta, context, distributed),
        scheduler=scheduler,
        schedule_unit=unit,
        penalty=WeightPenalty(model, config.l1, config.l2),
        callbacks=_callbacks(config, run_dir, tracker, callbacks, distributed is None or distributed.is_main),
        generator=generator,
        unwrapped_model=model,
        distributed=distributed,
    )
    if state is not None:
        trainer.load_full_state(state)
    # Everything is validated (config, data, model, the saved state): only now is anything written.
    lock = None
    if distributed is None or distributed.is_main:
        lock = lock_run_dir(run_dir, clear=not resume)
        try:
            write_run_files(run_dir, config, meta)
            for name, text in task.run_files(data).items():
                atomic_write_text(run_dir / name, text)
        except BaseException:
            lock.release()
            raise
    return TrainingRun(config, task, data, meta, model, context, trainer, run_dir, distributed, monitor, lock)


def _steps_per_epoch(batches: Any, samples: int, batch_size: int) -> int:
    try:
        return len(batches)
    except TypeError:
        return math.ceil(samples / batch_size)


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The saved config of a run, with overrides (e.g. more epochs) applied."""
    from dataclasses import replace

    from cnnlab.config import load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    if not (Path(run_dir) / "last.pt").exists():
        raise RunError(f"{run_dir}: nothing to resume (no last.pt)")
    from cnnlab.config import read_yaml

    read_yaml(path, required=("model", "data"))  # an empty or damaged config.yaml is refused, never read as defaults
    config = with_saved_paths(load_config(TrainConfig, path, overrides), run_dir, overrides)
    if "data" not in (overrides or {}):  # data that moved: named, with the flag that points at its new place
        from cnnlab.runfiles import check_run_data, read_run_meta

        check_run_data(config, read_run_meta(run_dir), "resume with --data PATH to say where it is now")
    return replace(config, out=str(run_dir))
