"""The bad-input suite's case type: one user mistake or fault, the command that meets it, what must come back.

Each `cases_*.py` module beside this one holds a `CASES: list[Case]`; `test_bad_input.py` runs them all
through the real CLI (`cnnlab.cli.main`) and checks: the exit code, exactly one line on stderr starting
`cnnlab: error: ` (no traceback), a phrase the message must contain, and, where given, a check of the files
afterwards (nothing lost, nothing half-written).

Placeholders in `argv`: {tmp} (a fresh folder per case), {run} (a copy of a small trained run, per case),
{mnist} (the shipped MNIST folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


@dataclass(frozen=True)
class Case:
    name: str  # category/what, e.g. "options/negative batch size"
    argv: list[str]
    phrase: str  # must appear in the one-line message (case-sensitive)
    exit_code: int = 1
    setup: Callable[[Path], None] | None = None  # called with the case's tmp folder (and {run} already copied there)
    check: Callable[[Path], None] | None = None  # called after the command, e.g. "run.json unchanged"
    needs_run: bool = False  # {run} placeholder: a copy of the trained tiny run lands in tmp/run
    stdout_ok: bool = True  # False: nothing may be printed on stdout either
    tags: tuple[str, ...] = field(default_factory=tuple)


def train_args(*extra: str) -> list[str]:
    """A cheap, valid training command on the shipped MNIST, plus the flags under test."""
    base = ["train", "--model", "lenet5_modern", "--data", "{mnist}", "--train-samples", "200", "--epochs", "1"]
    return base + ["--quiet", "--out", "{tmp}/out", *extra]
