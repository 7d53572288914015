"""The CLI's error contract: one line `cnnlab: error: ...`, exit 1 (2 for a bad command line, 130 for Ctrl-C);
the traceback only with --debug, before or after the command."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from cnnlab.cli import main, tasks_cmd
from cnnlab.errors import RunError
from cnnlab.runs import check_output_file, check_output_folder, writing

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def fail_with(monkeypatch, error: BaseException) -> None:
    def run(args):
        raise error

    monkeypatch.setattr(tasks_cmd, "run", run)


def test_an_unexpected_error_is_one_line_with_a_pointer_to_debug(monkeypatch, capsys):
    fail_with(monkeypatch, ValueError("boom\n  on two lines"))
    assert main(["tasks"]) == 1
    err = capsys.readouterr().err
    assert lines_of(err) == ["cnnlab: error: ValueError: boom on two lines (run with --debug for the traceback)"]


def test_a_very_long_message_is_cut(monkeypatch, capsys):
    fail_with(monkeypatch, RuntimeError("x" * 5000))
    assert main(["tasks"]) == 1
    (line,) = lines_of(capsys.readouterr().err)
    assert len(line) < 500 and line.endswith("(run with --debug for the traceback)")


@pytest.mark.parametrize("argv", [["--debug", "tasks"], ["tasks", "--debug"]])
def test_debug_shows_the_traceback_before_or_after_the_command(monkeypatch, capsys, argv):
    fail_with(monkeypatch, ValueError("boom"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "raise error" in err
    assert lines_of(err)[-1] == "cnnlab: error: ValueError: boom"


def test_debug_also_traces_a_cnnlab_error(monkeypatch, capsys):
    fail_with(monkeypatch, RunError("runs/x: run folder not found"))
    assert main(["tasks", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and lines_of(err)[-1] == "cnnlab: error: runs/x: run folder not found"


def test_a_full_disk_names_the_path(monkeypatch, capsys):
    fail_with(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/y"))
    assert main(["tasks"]) == 1
    assert lines_of(capsys.readouterr().err) == ["cnnlab: error: /x/y: No space left on device"]


def test_a_temp_file_of_an_atomic_write_is_named_by_its_target(monkeypatch, capsys):
    fail_with(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "/r/.evaluation_test.json.ab_3x9q.tmp"))
    assert main(["tasks"]) == 1
    assert lines_of(capsys.readouterr().err) == ["cnnlab: error: /r/evaluation_test.json: Permission denied"]


def test_an_os_error_without_a_path_is_its_reason(monkeypatch, capsys):
    fail_with(monkeypatch, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert main(["tasks"]) == 1
    assert lines_of(capsys.readouterr().err) == ["cnnlab: error: No space left on device"]


def test_ctrl_c_is_exit_130_and_one_line(monkeypatch, capsys):
    fail_with(monkeypatch, KeyboardInterrupt())
    assert main(["tasks"]) == 130
    assert lines_of(capsys.readouterr().err) == ["cnnlab: interrupted"]


def test_a_bad_command_line_is_one_line_exit_2_with_the_help_hint(capsys):
    assert main(["tasks", "--nope"]) == 2
    assert lines_of(capsys.readouterr().err) == [
        "cnnlab: error: unrecognized arguments: --nope; see `cnnlab tasks --help`"
    ]


def test_debug_does_not_trace_a_bad_command_line(capsys):
    assert main(["--debug", "evaluate"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(lines_of(err)) == 1


def test_help_still_prints_and_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--debug" in out and "evaluate" in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


# -- output paths ------------------------------------------------------------------------------------------


def test_an_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match=r"file: not a folder \(cannot write .*file/sub/out.png\)"):
        check_output_file(tmp_path / "file" / "sub" / "out.png")


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="file: not a folder$"):
        check_output_folder(tmp_path / "file")


def test_an_output_file_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(RunError, match="is a folder; give a file name"):
        check_output_file(tmp_path)


def test_a_folder_without_write_permission_is_refused(tmp_path, monkeypatch):
    # As root chmod does not stop writes, so the permission check itself is what is tested here.
    monkeypatch.setattr("cnnlab.runs.os.access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(RunError, match="permission denied"):
        check_output_file(tmp_path / "report.html")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_for_real(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(RunError, match="ro: permission denied"):
            check_output_file(folder / "report.html")
    finally:
        folder.chmod(0o755)


def test_an_os_error_while_writing_names_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "evaluation_test.json"
    with pytest.raises(RunError, match=r"evaluation_test.json: No space left on device$"):
        with writing(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / ".evaluation_test.json.x.tmp"))


# -- a real run in a read-only folder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "tiny"
    argv = ["train", "--model", "lenet5_modern", "--data", str(MNIST), "--train-samples", "200", "--epochs", "1"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shipped MNIST")
@pytest.mark.parametrize(
    "argv, written",
    [
        (["evaluate", "{run}"], "evaluation_test.json"),
        (["report", "{run}"], "report.html"),
        (["filters", "{run}"], "filters.png"),
    ],
)
def test_a_read_only_run_folder_is_one_line_naming_it(tiny_run, tmp_path, monkeypatch, capsys, argv, written):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    monkeypatch.setattr("cnnlab.runs.os.access", lambda path, mode: Path(path) != run)
    assert main([a.replace("{run}", str(run)) for a in argv]) == 1
    assert lines_of(capsys.readouterr().err) == [f"cnnlab: error: {run}: permission denied (cannot write there)"]
    assert not (run / written).exists()
