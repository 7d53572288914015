"""Table-driven bad-input suite: every case gets a one-line error naming what is wrong, never a traceback."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
from pathlib import Path

import pytest

from cnnlab.cli import main
from tests.badinput.cases import MNIST, Case


def all_cases() -> list[Case]:
    cases: list[Case] = []
    package = Path(__file__).parent
    for module in sorted(m.name for m in pkgutil.iter_modules([str(package)]) if m.name.startswith("cases_")):
        cases += importlib.import_module(f"tests.badinput.{module}").CASES
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


CASES = all_cases()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("badinput") / "tiny"
    argv = ["train", "--model", "lenet5_modern", "--data", str(MNIST), "--train-samples", "300", "--epochs", "1"]
    assert main([*argv, "--quiet", "--out", str(out), "--seed", "0"]) == 0
    return out


def _expand(argv: list[str], tmp: Path) -> list[str]:
    return [
        a.replace("{tmp}", str(tmp)).replace("{run}", str(tmp / "run")).replace("{mnist}", str(MNIST)) for a in argv
    ]


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shipped MNIST")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, request, capsys) -> None:
    if case.needs_run:
        shutil.copytree(request.getfixturevalue("tiny_run"), tmp_path / "run")
    if case.setup is not None:
        case.setup(tmp_path)
    capsys.readouterr()
    code = main(_expand(case.argv, tmp_path))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert code == case.exit_code, f"exit {code}, stderr: {err!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), f"stderr: {err!r}"
    assert case.phrase in lines[0], f"{case.phrase!r} not in {lines[0]!r}"
    if not case.stdout_ok:
        assert out == ""
    if case.check is not None:
        case.check(tmp_path)


def test_the_suite_is_big_enough():
    assert len(CASES) >= 150
