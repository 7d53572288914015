"""What a diagnosis says: findings (evidence + prescription) and the verdict that sums them up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Stable ids, in the order findings of equal severity are listed: causes of a failed run first (it did not
# train at all), then the bias/variance picture, then the data-side observations.
FINDING_IDS: tuple[str, ...] = (
    "divergence",
    "learning_rate",
    "underfitting",
    "high_variance",
    "trained_too_long",
    "complex_architecture",
    "inadequate_regularization",
    "limited_data",
    "class_imbalance",
)
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")

# One word for the whole run: the first verdict whose finding is present at warning or above wins.
VERDICTS: tuple[tuple[str, str], ...] = (
    ("divergence", "diverged"),
    ("high_variance", "overfitting"),
    ("trained_too_long", "overfitting"),
    ("underfitting", "underfitting"),
)


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what was seen (numbers and a sentence) and what to change (config keys and a sentence).

    Attributes:
        id: stable identifier, one of FINDING_IDS.
        severity: "critical", "warning" or "info".
        title: one line a user reads first.
        evidence: the numbers measured from the run (JSON-safe scalars).
        summary: a sentence quoting those numbers.
        changes: the prescription as dotted TrainConfig keys -> values (`{"optimizer.weight_decay": 5e-4}`).
        advice: the prescription in words, including the equivalent `cnnlab train` flags.
    """

    id: str
    severity: str
    title: str
    evidence: dict[str, Any]
    summary: str
    changes: dict[str, Any] = field(default_factory=dict)
    advice: str = ""

    def __post_init__(self) -> None:
        if self.id not in FINDING_IDS:
            raise ValueError(f"unknown finding id {self.id!r}; known: {', '.join(FINDING_IDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; known: {', '.join(SEVERITIES)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `cnnlab diagnose --json`: id, severity, title, evidence, prescription."""
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": {"summary": self.summary, "values": dict(self.evidence)},
            "prescription": {"changes": dict(self.changes), "advice": self.advice},
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, the fixed order of FINDING_IDS (so output is stable)."""
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), FINDING_IDS.index(f.id)))


def verdict(findings: list[Finding]) -> str:
    """ "diverged", "overfitting", "underfitting" or "healthy" (no bias/variance problem at warning or above)."""
    serious = {f.id for f in findings if f.severity != "info"}
    for finding_id, word in VERDICTS:
        if finding_id in serious:
            return word
    return "healthy"


@dataclass
class Diagnosis:
    """Everything `diagnose_run` found in one run folder.

    Attributes:
        run_dir: the run folder ("" when diagnosed from data in memory).
        findings: most severe first.
        verdict: "diverged", "overfitting", "underfitting" or "healthy".
        facts: the run's key numbers (model, parameters, samples, best epoch, ...), for headers and reports.
        config: the run's config.yaml as a dict (what `--write-config` edits).
    """

    run_dir: str
    findings: list[Finding]
    verdict: str
    facts: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    @property
    def ids(self) -> list[str]:
        return [f.id for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_dir,
            "verdict": self.verdict,
            "facts": self.facts,
            "findings": [f.to_dict() for f in self.findings],
        }
