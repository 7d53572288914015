"""Overfitting diagnosis: read a training run, say what went wrong and which config changes fix it.

    diagnosis = diagnose_run("runs/lenet5_mnist")        # Diagnosis: verdict + findings, most severe first
    for finding in diagnosis.findings:
        print(finding.severity, finding.title, finding.summary, finding.changes)
    write_fixed_config(diagnosis, "fixed.yaml")          # then: cnnlab train --config fixed.yaml

`diagnose(history, config, meta)` is the same analysis on data in memory (for constructed histories), and
`learning_curve(config, fractions)` measures whether more training data would help.
"""

from cnnlab.diagnose.findings import FINDING_IDS, SEVERITIES, Diagnosis, Finding, sort_findings, verdict
from cnnlab.diagnose.learning_curve import LearningCurve, learning_curve
from cnnlab.diagnose.prescribe import merge_changes, render_flags
from cnnlab.diagnose.rules import RULES, diagnose
from cnnlab.diagnose.run import diagnose_run, fixed_config, read_history, write_fixed_config

__all__ = [
    "FINDING_IDS",
    "RULES",
    "SEVERITIES",
    "Diagnosis",
    "Finding",
    "LearningCurve",
    "diagnose",
    "diagnose_run",
    "fixed_config",
    "learning_curve",
    "merge_changes",
    "read_history",
    "render_flags",
    "sort_findings",
    "verdict",
    "write_fixed_config",
]
