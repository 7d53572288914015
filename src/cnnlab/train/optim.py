"""Optimizers and learning-rate schedules, built from the config."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train.config import OptimizerConfig, ScheduleConfig

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def split_decay_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(weights, biases-and-norm-parameters): decaying the second group only hurts (Goyal et al. 2017)."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if isinstance(module, NORM_TYPES) or name.endswith("bias") else decay).append(param)
    return decay, no_decay


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    decay, no_decay = split_decay_parameters(model)
    if config.decay_bias_and_norm:
        decay, no_decay = decay + no_decay, []
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    name = config.name.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=tuple(config.betas))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))
    if name == "adadelta":  # Kim 2014's optimiser (Zeiler 2012): rho 0.95, eps 1e-6, learning rate 1.0
        from cnnlab.train.adadelta import Adadelta

        return Adadelta(_lazy_embedding_groups(model, groups), lr=config.lr, rho=config.rho, eps=config.eps)
    raise ConfigError(f"optimizer.name: unknown optimizer {config.name!r}; choose sgd, adam, adamw or adadelta")


def _lazy_embedding_groups(model: nn.Module, groups: list[dict]) -> list[dict]:
    """Word-embedding tables in groups of their own, updated row-lazily (`train.adadelta`)."""
    from cnnlab.train.adadelta import embedding_parameters

    tables = embedding_parameters(model)
    split = []
    for group in groups:
        dense = [p for p in group["params"] if id(p) not in tables]
        lazy = [p for p in group["params"] if id(p) in tables]
        split += [{**group, "params": dense}] if dense else []
        split += [{**group, "params": lazy, "lazy_rows": True}] if lazy else []
    return split


def _decay_factor(config: ScheduleConfig, epoch: float, epochs: int, base_lr: float) -> float:
    name = config.name.lower()
    if name in ("none", "constant"):
        return 1.0
    if name == "step":
        return config.gamma ** int(epoch // config.step_size)
    if name == "multistep":
        return config.gamma ** sum(epoch >= m for m in config.milestones)
    if name == "cosine":
        span = max(epochs - config.warmup_epochs, 1e-8)
        t = min(max(epoch - config.warmup_epochs, 0.0) / span, 1.0)
        floor = config.min_lr / base_lr if base_lr else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    raise ConfigError(
        f"schedule.name: unknown schedule {config.name!r}; choose none, step, multistep, cosine, onecycle or plateau"
    )


def _cycle_too_short(total_steps: int, pct_start: float) -> bool:
    """True when a phase of OneCycleLR would span less than one step (its rise ends at pct_start * total - 1)."""
    rise_end = float(pct_start * total_steps) - 1
    return rise_end <= 0 or (total_steps - 1) - rise_end <= 0


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, epochs: int, steps_per_epoch: int
) -> tuple[torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau, str]:
    """A scheduler and when to step it: "step" (every batch) or "epoch" (plateau, with the metric)."""
    name = config.name.lower()
    base_lr = optimizer.param_groups[0]["lr"]
    if name == "onecycle" and _cycle_too_short(epochs * steps_per_epoch, config.pct_start):
        # OneCycleLR divides by the length of its phases, which a run of a handful of steps does not have (a
        # ZeroDivisionError in torch): such a run trains at the peak rate, as a cycle that short would on average.
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), "step"
    if name == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=config.pct_start,
        )
        return sched, "step"
    if name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.gamma, patience=config.patience, min_lr=config.min_lr
        )
        return sched, "epoch"
    _decay_factor(config, 0.0, epochs, base_lr)  # validate the name now, not at the first step
    warmup_steps = config.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * _decay_factor(config, step / steps_per_epoch, epochs, base_lr)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step"
