"""Optimisation: divergence and a learning rate too high or too low, read off the training-loss curve."""

from __future__ import annotations

import math
from typing import Any

from cnnlab.diagnose import curves, remedies
from cnnlab.diagnose.facts import RunFacts
from cnnlab.diagnose.findings import Finding
from cnnlab.diagnose.prescribe import make_finding

# A freshly initialised classifier starts at a loss of ln K (uniform guess). Ending 3x above that means the
# weights were thrown somewhere far worse than random: divergence even without a NaN.
DIVERGED_FACTOR = 3.0
# Under a workable learning rate the epoch-mean training loss falls epoch after epoch; a rise of 25% or more means
# the steps overshoot (the curvature along some direction exceeds 2 / lr). The rise must also be a tenth of ln K
# in nats: a memorising model's near-zero loss wobbles (0.03 -> 0.06) by large ratios that mean nothing.
LOSS_SPIKE = 0.25
SPIKE_MIN_FRACTION_OF_CHANCE = 0.1
# An average first-epoch loss 1.5x above ln K: the first steps blew the loss up instead of bringing it down.
BLOWUP_FACTOR = 1.5
# "Stuck at chance": every epoch's loss within 5% of ln K and accuracy under twice chance.
CHANCE_BAND = 0.05
# Too slow: after 3+ epochs every epoch lower than the last, yet still above half of ln K, and the second half of
# the run dropped at least 60% as much as the first: a straight line where a healthy curve has bent over.
MIN_EPOCHS_FOR_SHAPE = 3
SLOW_LOSS_FRACTION = 0.5
LINEAR_RATIO = 0.6
# A detector whose loss never moved and whose validation mAP@0.5 stayed under 0.05 found next to nothing.
STUCK_MAP50 = 0.05
# Tie-breaker for a loss stuck at chance (dead units after huge steps, or steps too small to move): a learning
# rate 30x below the optimizer's typical one counts as small.
FAR_BELOW_TYPICAL = 30.0


def _usable_lr(facts: RunFacts) -> float:
    """The run's learning rate, or the optimizer's typical one where the config's is NaN, infinite or <= 0
    (runs from before options were validated): a prescription computed from it must be a real number."""
    lr = facts.lr
    return lr if math.isfinite(lr) and lr > 0 else remedies.typical_lr(facts)


def _nonfinite_evidence(facts: RunFacts, index: int) -> dict[str, Any]:
    row = facts.history[index]
    losses = [v for v in curves.column(facts.history[:index], "train_loss") if math.isfinite(v)]
    return {
        "epoch": curves.epoch_of(facts.history, index),
        "train_loss": str(row.get("train_loss")),
        "val_loss": str(row.get("val_loss")),
        "last_finite_train_loss": losses[-1] if losses else None,
        "lr": row.get("lr", facts.lr),
        "precision": facts.config.get("precision", "fp32"),
    }


def divergence(facts: RunFacts) -> Finding | None:
    """The loss became NaN/inf, or ended far above where an untrained model starts."""
    if not facts.history:
        return None
    index = curves.first_nonfinite_index(facts.history)
    if index is not None:
        evidence = _nonfinite_evidence(facts, index)
        summary = (
            f"The loss became {evidence['train_loss']} in epoch {evidence['epoch']} (learning rate "
            f"{evidence['lr']:g}); training stopped there."
        )
    else:
        end = float(facts.last.get("train_loss", 0.0))
        if end < DIVERGED_FACTOR * facts.chance_loss:
            return None
        evidence = {
            "epoch": curves.epoch_of(facts.history, -1),
            "train_loss": end,
            "chance_loss": facts.chance_loss,
            "lr": facts.last.get("lr", facts.lr),
            "precision": facts.config.get("precision", "fp32"),
        }
        summary = (
            f"Training loss ended at {end:.3f}, {end / facts.chance_loss:.1f}x the {facts.chance_loss:.3f} of "
            "an untrained model."
        )
    changes: dict[str, Any] = {"optimizer.lr": _usable_lr(facts) / 10}
    if not facts.config.get("grad_clip"):
        changes["grad_clip"] = 1.0
    if not float((facts.config.get("schedule") or {}).get("warmup_epochs", 0) or 0):
        changes["schedule.warmup_epochs"] = 1
    words = "Lower the learning rate tenfold, clip the gradient norm at 1 and warm the learning rate up over an epoch."
    if evidence["precision"] == "fp16":
        changes["precision"] = "bf16"
        words += " fp16 overflows easily: use bf16 (same speed, fp32's range) or fp32."
    return make_finding(
        facts.config, "divergence", "critical", "Divergence: the loss blew up", evidence, summary, changes, words
    )


def _too_high(facts: RunFacts, losses: list[float]) -> tuple[str, dict[str, Any]] | None:
    floor = SPIKE_MIN_FRACTION_OF_CHANCE * facts.loss_scale
    spikes = [
        (i, rise)
        for i, rise in curves.relative_increases(losses)
        if rise >= LOSS_SPIKE and losses[i] - losses[i - 1] >= floor
    ]
    if spikes:
        index, rise = max(spikes, key=lambda item: item[1])
        epoch = curves.epoch_of(facts.history, index)
        return (
            f"Training loss jumped {100 * rise:.0f}% in epoch {epoch} ({losses[index - 1]:.3f} -> "
            f"{losses[index]:.3f}); {len(spikes)} such spike(s).",
            {"spikes": len(spikes), "spike_epoch": epoch, "largest_rise": rise},
        )
    if losses[0] >= BLOWUP_FACTOR * facts.chance_loss:
        return (
            f"The first epoch's mean training loss {losses[0]:.3f} is {losses[0] / facts.chance_loss:.1f}x the "
            f"{facts.chance_loss:.3f} an untrained model starts at: the first steps blew it up.",
            {"first_epoch_loss": losses[0]},
        )
    return None


def _stuck_at_chance(facts: RunFacts, losses: list[float]) -> bool:
    near = all(abs(v / facts.loss_scale - 1.0) <= CHANCE_BAND for v in losses)
    if facts.task == "detection":  # flat from the first epoch on, and next to nothing found
        return len(losses) >= 2 and near and (facts.best_val_map50 or 0.0) < STUCK_MAP50
    accuracy = float(facts.last.get("train_accuracy") or 0.0)
    return near and accuracy < 2 * facts.chance_accuracy


def _too_slow(facts: RunFacts, losses: list[float]) -> tuple[str, dict[str, Any]] | None:
    if len(losses) < MIN_EPOCHS_FOR_SHAPE or not curves.is_steadily_decreasing(losses):
        return None
    if losses[-1] < SLOW_LOSS_FRACTION * facts.loss_scale:
        return None
    first, second = curves.half_drops(losses)
    if first <= 0 or second < LINEAR_RATIO * first:
        return None
    return (
        f"Training loss fell steadily but slowly and in a near straight line ({losses[0]:.3f} -> {losses[-1]:.3f}; "
        f"the second half of the run dropped {second / first:.0%} as much as the first), still above half of "
        f"{facts.loss_scale_words}.",
        {"first_half_drop": first, "second_half_drop": second},
    )


def _diagnose_rate(facts: RunFacts, losses: list[float]) -> tuple[str, str, dict[str, Any]] | None:
    """("high"|"low", sentence, evidence) or None when the loss curve looks like a workable learning rate."""
    high = _too_high(facts, losses)
    if high:
        return ("high", *high)
    if _stuck_at_chance(facts, losses) and not curves.is_steadily_decreasing(losses, tolerance=0.01):
        small = facts.lr <= remedies.typical_lr(facts) / FAR_BELOW_TYPICAL
        level = (
            f"flat ({losses[-1]:.3f} vs {losses[0]:.3f} in the first epoch; best val mAP@0.5 "
            f"{facts.best_val_map50 or 0.0:.3f})"
            if facts.task == "detection"
            else f"at chance level ({losses[-1]:.3f} vs ln K = {facts.chance_loss:.3f})"
        )
        sentence = (
            f"Training loss stayed {level} for "
            f"{len(losses)} epoch(s) with learning rate {facts.lr:g} (typical for {facts.optimizer_name}: "
            f"{remedies.typical_lr(facts):g})."
        )
        return ("low" if small else "high", sentence, {"stuck_at_chance": True})
    slow = _too_slow(facts, losses)
    return ("low", *slow) if slow else None


def learning_rate(facts: RunFacts) -> Finding | None:
    """The loss curve's shape says the learning rate is too high (spikes, blow-up) or too low (slow, straight)."""
    losses = curves.column(facts.history, "train_loss")
    if not losses or curves.first_nonfinite_index(facts.history) is not None:
        return None  # divergence reports non-finite losses
    found = _diagnose_rate(facts, losses)
    if found is None:
        return None
    direction, sentence, extra = found
    typical = remedies.typical_lr(facts)
    evidence = {
        "direction": direction,
        "lr": facts.lr,
        "optimizer": facts.optimizer_name,
        "typical_lr": typical,
        "train_loss_first": losses[0],
        "train_loss_end": losses[-1],
        **(
            {"chance_loss": facts.chance_loss} if math.isfinite(facts.chance_loss) else {"loss_scale": facts.loss_scale}
        ),
        **extra,
    }
    lr = _usable_lr(facts)
    if direction == "high":
        changes: dict[str, Any] = {"optimizer.lr": lr / 10}
        words = "Lower the learning rate tenfold (or run a learning-rate range test, Smith 2017)."
        title = "Learning rate too high: the training loss jumps instead of falling"
    else:
        changes = {"optimizer.lr": typical if lr < typical / 10 else lr * 3}
        words = (
            f"Raise the learning rate (to {changes['optimizer.lr']:g}); with {facts.optimizer_name} "
            f"{typical:g} is the usual start."
        )
        title = "Learning rate too low: the training loss falls far too slowly"
    severity = "critical" if "stuck_at_chance" in extra else "warning"
    return make_finding(facts.config, "learning_rate", severity, title, evidence, sentence, changes, words)
