"""The `cnnlab` command: thin wrappers that parse flags, build a config and call the library."""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
import traceback
from pathlib import Path

# OpenMP threads that spin while waiting collapse when another process holds a core: measured 12-16x slower
# LeNet-5 steps with 2 spinning threads on a shared 2-core machine (bench/RESULTS.md). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cnnlab.errors import CnnlabError

# Subcommand name -> module in cnnlab.cli with `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "models": ("models_cmd", "list the model zoo with parameters, MACs and papers"),
    "tasks": ("tasks_cmd", "list the tasks: their metrics (and directions) and default monitor"),
    "summary": ("summary_cmd", "layer-by-layer table: shapes, parameters, MACs, receptive field"),
    "train": ("train_cmd", "train a model (YAML config + flag overrides)"),
    "evaluate": ("evaluate_cmd", "evaluate a run: accuracy, per-class metrics, confusion matrix"),
    "predict": ("predict_cmd", "top-k predictions for images with the run's preprocessing"),
    "diagnose": ("diagnose_cmd", "find overfitting/underfitting in a run and prescribe fixes"),
    "learning-curve": ("learning_curve_cmd", "train on growing data fractions: would more data help?"),
    "lr-find": ("lr_find_cmd", "learning-rate range test: loss against learning rate, and a suggested rate"),
    "explain": ("explain_cmd", "Grad-CAM and feature maps for an image"),
    "filters": ("filters_cmd", "first-layer filters as an image grid"),
    "report": ("report_cmd", "one self-contained HTML report of a run"),
    "detect": ("detect_cmd", "object detection: train, evaluate and predict with grid detectors (YOLO-style)"),
    "faces": ("faces_cmd", "face recognition: train an embedder, evaluate, enroll, identify and verify"),
    "text": ("text_cmd", "sentence classification (Kim's CNN): train, evaluate and predict"),
    "export": ("export_cmd", "export a run's model to ONNX or TorchScript"),
    "serve": ("serve_cmd", "serve a run over HTTP (FastAPI): /predict, /metrics, a page at /"),
    "examples": ("examples_cmd", "list the example configs shipped with cnnlab (train one with --config NAME)"),
}


DEBUG_FLAG = "--debug"
MESSAGE_LIMIT = 400  # characters of an unexpected error's message on its one line; --debug shows it all


class UsageError(Exception):
    """A command line argparse cannot parse; `main` prints it as one line with a pointer to --help."""


class CommandParser(argparse.ArgumentParser):
    """argparse, except that a bad command line is one line (not usage text), and `main` decides the exit.

    No prefix matching: argparse would read `--epoch 3` as `--epochs 3`, and a flag added later would turn
    yesterday's abbreviation into an error or a different option; an unknown flag gets a suggestion instead.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)

    def option_strings(self) -> list[str]:
        """Every flag `--help` shows (hidden spellings such as `--batch_size` are not suggested)."""
        return [flag for action in self._actions if action.help != argparse.SUPPRESS for flag in action.option_strings]


def _load(module: str):
    return importlib.import_module(f"cnnlab.cli.{module}")


def _chosen_command(argv: list[str]) -> str | None:
    # The top-level parser takes no option with a value, so the first word that is not a flag is the command.
    return next((a for a in argv if not a.startswith("-")), None)


def version_line() -> str:
    """`cnnlab 0.1.0 (torch 2.5.1, torchvision 0.20.1, python 3.11.7)`, read without importing torch."""
    import platform
    from importlib import metadata

    from cnnlab import __version__

    def installed(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"cnnlab {__version__} (torch {installed('torch')}, torchvision {installed('torchvision')}, "
        f"python {platform.python_version()})"
    )


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = CommandParser(prog="cnnlab", description=__doc__)
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the full traceback of an error (anywhere)")
    parser.add_argument("--version", action="version", version=version_line(), help="print the versions and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    parser.command_parsers = sub.choices  # type: ignore[attr-defined]
    # Only the chosen subcommand's module is imported, so `cnnlab models` stays fast.
    chosen = _chosen_command(argv)
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                _load(module).add_arguments(command_parser)
            except ModuleNotFoundError as error:
                if error.name != f"cnnlab.cli.{module}":
                    raise
            _shorten_usage(command_parser)
    return parser


LONG_USAGE = 12  # flags; above this a command's usage line says [OPTIONS] and its --help sections list them


def _shorten_usage(parser: argparse.ArgumentParser) -> None:
    """`usage: cnnlab train [OPTIONS]`, not 30 lines of flags above the sections that explain them."""
    if parser.usage is None and not parser._get_positional_actions() and len(parser._actions) > LONG_USAGE:
        parser.usage = "%(prog)s [OPTIONS]"


def one_line(text: str, limit: int | None = None) -> str:
    """A message on one line (the CLI's contract: one line per error), cut at `limit` characters."""
    flat = " ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


def _target_of(filename: str) -> str:
    """The file a write was for: `cnnlab.io.atomic_write` writes `.NAME.XXXXXXXX.tmp` beside NAME first."""
    path = Path(filename)
    match = re.fullmatch(r"\.(.+)\.[A-Za-z0-9_]+\.tmp", path.name)
    return str(path.with_name(match.group(1))) if match else str(filename)


def os_error_line(error: OSError) -> str:
    """`/x/y: No space left on device`: the path and the system's reason, as a user reads them."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename is None:
        return one_line(reason)
    paths = _target_of(os.fsdecode(error.filename))
    if getattr(error, "filename2", None) is not None:
        paths += f" -> {os.fsdecode(error.filename2)}"
    return one_line(f"{paths}: {reason}")


def _usage_line(error: UsageError, argv: list[str]) -> str:
    command = _chosen_command(argv)
    where = f"cnnlab {command}" if command in COMMANDS else "cnnlab"
    return one_line(f"{error}; see `{where} --help`")


def suggest_flags(unknown: str, known: list[str]) -> list[str]:
    """The flags a mistyped one most likely meant: `--epoch` -> `--epochs`, `--patience` -> its dotted forms."""
    name = unknown.split("=", 1)[0]
    if not name.startswith("-") or name in known:
        return []
    bare = name.lstrip("-")
    dashed = [flag for flag in known if flag == "--" + bare]  # `-lr` for `--lr`
    tail = [flag for flag in known if flag.startswith("--") and flag.rsplit(".", 1)[-1] == bare]
    prefix = [flag for flag in known if flag.startswith(name) and name.startswith("--") and len(name) > 3]
    likely = dashed or tail + prefix or difflib.get_close_matches(name, known, n=2, cutoff=0.7)
    return list(dict.fromkeys(likely))[:3]


def _either(flags: list[str]) -> str:
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} or {flags[-1]}"


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> UsageError:
    flag = next((item for item in extras if item.startswith("-")), "")
    options = parser.option_strings() if isinstance(parser, CommandParser) else []
    suggestions = suggest_flags(flag, options)
    hint = f" (did you mean {_either(suggestions)}?)" if suggestions else ""
    return UsageError(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _unknown_command(argv: list[str]) -> UsageError | None:
    command = _chosen_command(argv)
    if command is None or command in COMMANDS:
        return None
    close = difflib.get_close_matches(command, COMMANDS, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"commands: {', '.join(COMMANDS)}"
    return UsageError(f"unknown command {command!r} ({hint})")


def _silence_broken_pipe() -> None:
    """`cnnlab models | head` closed our stdout: stop quietly, as Unix tools do (Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass


def _error(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    if "CNNLAB_ERROR_DIR" in os.environ and "RANK" in os.environ:  # a worker of `--nproc`: the launcher says it once
        from cnnlab.train.distributed import report_worker_error

        if report_worker_error(message):
            return
    print(f"cnnlab: error: {message}", file=sys.stderr)


def _run(argv: list[str], debug: bool) -> int:
    unknown = _unknown_command(argv)
    if unknown is not None:
        raise unknown
    parser = build_parser(argv)
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit as done:  # --help or --version printed its text
        return done.code if isinstance(done.code, int) else 0
    target = getattr(args, "positional_extras", None)  # `text predict RUN --top 3 "a sentence"`: argparse leaves
    if extras and target and not any(item.startswith("-") for item in extras):  # positionals after flags over
        getattr(args, target).extend(extras)
        extras = []
    if extras:
        raise _unrecognized(extras, parser.command_parsers.get(args.command, parser))
    if not args.command:
        parser.print_help()
        return 2
    module_name = COMMANDS[args.command][0]
    try:
        module = _load(module_name)
    except ModuleNotFoundError as error:
        if error.name == f"cnnlab.cli.{module_name}":
            print(f"cnnlab: error: command {args.command!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    args.debug = debug
    args.argv = argv + ([DEBUG_FLAG] if debug else [])  # what a relaunch (torchrun) passes on
    return int(module.run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error ends as one line `cnnlab: error: ...` (the traceback only with --debug).

    Exit codes: 0 done, 1 an error, 2 a command line that cannot be parsed, 130 interrupted (Ctrl-C).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = DEBUG_FLAG in argv  # a global flag, before or after the command
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return _run(argv, debug)
    except UsageError as error:  # the command line is the whole story: no traceback even with --debug
        _error(_usage_line(error, argv), debug=False)
        return 2
    except CnnlabError as error:
        _error(one_line(str(error)), debug)
        return 1
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_broken_pipe()
        return 1
    except OSError as error:
        _error(os_error_line(error), debug)
        return 1
    except Exception as error:  # the last resort: a bug or a fault nobody foresaw is still one line
        message = one_line(str(error), MESSAGE_LIMIT) or "(no message)"
        hint = "" if debug else " (run with --debug for the traceback)"
        _error(f"{type(error).__name__}: {message}{hint}", debug)
        return 1
