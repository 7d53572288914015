"""All rules in one list, and `diagnose`: the pure function from a run's data to its findings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from cnnlab.diagnose.facts import RunFacts, build_facts
from cnnlab.diagnose.findings import Finding, sort_findings
from cnnlab.diagnose.rules_data import class_imbalance, complex_architecture, inadequate_regularization, limited_data
from cnnlab.diagnose.rules_detection import detection_underfitting, detection_variance
from cnnlab.diagnose.rules_fit import high_variance, trained_too_long, underfitting
from cnnlab.diagnose.rules_optim import divergence, learning_rate

Rule = Callable[[RunFacts], "Finding | None"]

RULES: tuple[Rule, ...] = (
    divergence,
    learning_rate,
    underfitting,
    detection_underfitting,
    high_variance,
    detection_variance,
    trained_too_long,
    complex_architecture,
    inadequate_regularization,
    limited_data,
    class_imbalance,
)


# Rules that read accuracies or class counts judge classification runs (a task that logs the same metrics may
# add its name); divergence, learning rate and missing regularisers read losses and the config: every task.
# Detection logs no accuracy: its bias/variance rules (rules_detection) read losses and val mAP instead, and
# trained_too_long reads its monitor (val mAP@0.5). Rules that count images per class or propose classifiers
# from the zoo stay with classification.
# Sentence classification (text) logs loss and accuracy per class too; the zoo's image classifiers and the
# images-per-class rule do not fit it.
CLASSIFICATION_ONLY = frozenset({"classification"})
LABEL_TASKS = frozenset({"classification", "text"})
RULE_TASKS: dict[Rule, frozenset[str]] = {
    **{rule: LABEL_TASKS for rule in (underfitting, high_variance, class_imbalance)},
    **{rule: CLASSIFICATION_ONLY for rule in (complex_architecture, limited_data)},
    trained_too_long: frozenset({"classification", "detection", "text"}),
}


def applies(rule: Rule, task: str) -> bool:
    """The tasks a rule judges: its `tasks` attribute, else RULE_TASKS; rules in neither judge every task."""
    tasks = getattr(rule, "tasks", None) or RULE_TASKS.get(rule)
    return tasks is None or task in tasks


def run_rules(facts: RunFacts) -> list[Finding]:
    """Every rule that applies to the run's task on the facts; findings most severe first."""
    return sort_findings([f for rule in RULES if applies(rule, facts.task) and (f := rule(facts)) is not None])


def diagnose(
    history: list[dict[str, Any]],
    config: dict[str, Any],
    meta: dict[str, Any],
    model: nn.Module | None = None,
    results: dict[str, Any] | None = None,
    learning_curve: dict[str, Any] | None = None,
) -> list[Finding]:
    """Findings for a run given as data, so constructed histories can be tested without training.

    Args:
        history: one dict per epoch, as in metrics.jsonl (train_loss, train_accuracy, val_loss, val_accuracy, lr).
        config: the run's config.yaml as a dict (missing keys take TrainConfig's defaults).
        meta: the run's run.json (num_classes, input_shape, parameters, data.class_counts, data.sizes, model).
        model: the run's model; its layers say whether dropout and batch norm are really present. When None it is
            rebuilt from `meta["model"]`, else the config's word is taken.
        results: the run's results.json (best_epoch, test metrics), if any.
        learning_curve: the result of `learning_curve` (`more_data_helps`), if one was measured.

    Returns:
        Findings, most severe first; an empty list for a healthy run.
    """
    return run_rules(build_facts(history, config, meta, model, results, learning_curve))
