"""Bad-input cases: damaged run folders, YAML syntax errors, unwritable outputs and command lines argparse refuses.

A run folder's files (run.json, results.json, metrics.jsonl, config.yaml) damaged in every way a disk, an editor or
a careless script can damage them: each command that reads one answers in one line naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.badinput.cases import Case, train_args

Setup = Callable[[Path], None]


def write(relative: str, content: str | bytes) -> Setup:
    """Setup: (over)write `tmp/relative` with `content`."""

    def setup(tmp: Path) -> None:
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def truncate(relative: str, keep: float = 0.5) -> Setup:
    """Setup: cut `tmp/relative` to its first `keep` fraction (a write that a full disk or a kill stopped)."""

    def setup(tmp: Path) -> None:
        path = tmp / relative
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return setup


def remove(relative: str) -> Setup:
    return lambda tmp: (tmp / relative).unlink()


def edit_meta(change: Callable[[dict], None], name: str = "run/run.json") -> Setup:
    """Setup: load a JSON object of the run, let `change` edit it in place, write it back."""

    def setup(tmp: Path) -> None:
        path = tmp / name
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return setup


def drop(key: str) -> Callable[[dict], None]:
    return lambda data: data.pop(key)


def put(key: str, value) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(key, value)


def replace_line(relative: str, old: str, new: str) -> Setup:
    """Setup: replace the first line of `tmp/relative` that starts with `old` by `new`."""

    def setup(tmp: Path) -> None:
        path = tmp / relative
        lines = path.read_text().splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith(old))
        lines[index] = new
        path.write_text("\n".join(lines) + "\n")

    return setup


def absent(relative: str) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        assert not (tmp / relative).exists(), f"{relative} was written"

    return check


def run_case(name: str, argv: list[str], phrase: str, setup: Setup | None = None, **kw) -> Case:
    return Case(name, argv, phrase, setup=setup, needs_run=True, **kw)


BAD_YAML = "model: lenet5_modern\ndata: {mnist\nepochs: 1\n"  # an unclosed flow mapping
TAB_YAML = "model: lenet5_modern\noptimizer:\n\tlr: 0.1\n"  # YAML forbids tabs for indentation
CLOSED_STRING_YAML = 'model: "lenet5_modern\nepochs: 1\n'

RUN_JSON_CASES = [
    run_case(
        "runs/run.json not JSON: evaluate",
        ["evaluate", "{run}"],
        "run.json: line 1, column 1: not valid JSON",
        write("run/run.json", "this is not json\n"),
    ),
    run_case(
        "runs/run.json truncated: predict",
        ["predict", "{run}", "{mnist}"],
        "run.json: line",
        truncate("run/run.json"),
    ),
    run_case(
        "runs/run.json empty: export",
        ["export", "{run}", "--out", "{tmp}/m.onnx"],
        "run.json: empty file",
        write("run/run.json", ""),
    ),
    run_case(
        "runs/run.json binary garbage: diagnose",
        ["diagnose", "{run}"],
        "run.json: not a text file",
        write("run/run.json", b"\x89PNG\r\n\x1a\n\xff\xfe\x00"),
    ),
    run_case(
        "runs/run.json a list: filters",
        ["filters", "{run}"],
        "run.json: expected a JSON object, got a list",
        write("run/run.json", "[1, 2, 3]\n"),
    ),
    run_case(
        "runs/run.json a number: report",
        ["report", "{run}"],
        "run.json: expected a JSON object",
        write("run/run.json", "42\n"),
    ),
    run_case(
        "runs/run.json missing input_shape: predict",
        ["predict", "{run}", "{mnist}"],
        "run.json: missing field 'input_shape'",
        edit_meta(drop("input_shape")),
    ),
    run_case(
        "runs/run.json missing classes: evaluate",
        ["evaluate", "{run}"],
        "run.json: missing field 'classes'",
        edit_meta(drop("classes")),
    ),
    run_case(
        "runs/run.json missing model: export",
        ["export", "{run}", "--out", "{tmp}/m.onnx"],
        "run.json: missing field 'model'",
        edit_meta(drop("model")),
    ),
    run_case(
        "runs/run.json missing normalization: predict",
        ["predict", "{run}", "{mnist}"],
        "run.json: missing field 'normalization'",
        edit_meta(drop("normalization")),
    ),
    run_case(
        "runs/run.json missing num_classes: filters",
        ["filters", "{run}"],
        "run.json: missing field 'num_classes'",
        edit_meta(drop("num_classes")),
    ),
    run_case(
        "runs/run.json input_shape a string: explain",
        ["explain", "{run}", "{tmp}/x.png"],
        "run.json: field 'input_shape' must be a list of positive integers",
        edit_meta(put("input_shape", "1x28x28")),
    ),
    run_case(
        "runs/run.json input_shape negative: filters",
        ["filters", "{run}"],
        "field 'input_shape' must be a list of positive integers",
        edit_meta(put("input_shape", [1, -28, 28])),
    ),
    run_case(
        "runs/run.json num_classes a string: report",
        ["report", "{run}"],
        "run.json: field 'num_classes' must be a positive integer",
        edit_meta(put("num_classes", "10")),
    ),
    run_case(
        "runs/run.json input_shape too short: filters",
        ["filters", "{run}"],
        "field 'input_shape' must be a list of positive integers [channels, height, width] (or [length] for text), "
        "got [1, 28]",
        edit_meta(put("input_shape", [1, 28])),
    ),
    run_case(
        "runs/run.json unknown task option: evaluate",
        ["evaluate", "{run}"],
        "run.json: task 'classification': unknown config field",
        edit_meta(lambda meta: meta["task"].update(options={"bogus": 1})),
    ),
    run_case(
        "runs/run.json unknown model option: predict",
        ["predict", "{run}", "{mnist}"],
        "run.json: model 'lenet5_modern': ",
        edit_meta(lambda meta: meta["model"].update(options={"nonsense": 3})),
    ),
    run_case(
        "runs/run.json model without a name: filters",
        ["filters", "{run}"],
        "run.json: missing field 'name'",
        edit_meta(put("model", {})),
    ),
    run_case(
        "runs/run.json classes a string: predict",
        ["predict", "{run}", "{mnist}"],
        "field 'classes' must be a list of class names",
        edit_meta(put("classes", "0123456789")),
    ),
    run_case(
        "runs/run.json classes and num_classes disagree: predict",
        ["predict", "{run}", "{mnist}"],
        "3 names in 'classes' but 'num_classes' is 10",
        edit_meta(put("classes", ["a", "b", "c"])),
    ),
    run_case(
        "runs/run.json normalization wrong length: evaluate",
        ["evaluate", "{run}"],
        "'normalization' has 3 means and 3 stds for 1 input channels",
        edit_meta(put("normalization", {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]})),
    ),
    run_case(
        "runs/run.json normalization not numbers: export",
        ["export", "{run}", "--out", "{tmp}/m.onnx"],
        "field 'normalization' must be a mapping",
        edit_meta(put("normalization", {"mean": ["x"], "std": [1]})),
    ),
    run_case(
        "runs/run.json unknown task: evaluate",
        ["evaluate", "{run}"],
        "run.json: task: unknown task 'segmentation'",
        edit_meta(put("task", {"name": "segmentation", "options": {}})),
    ),
    run_case(
        "runs/run.json task a string: diagnose",
        ["diagnose", "{run}"],
        "run.json: field 'task' must be a mapping",
        edit_meta(put("task", "classification")),
    ),
    run_case(
        "runs/run.json unknown model name: export",
        ["export", "{run}", "--out", "{tmp}/m.onnx"],
        "run.json: ",
        edit_meta(put("model", {"name": "no_such_net", "options": {}})),
    ),
    run_case(
        "runs/run.json model a string: predict",
        ["predict", "{run}", "{mnist}"],
        "field 'model' must be a mapping",
        edit_meta(put("model", "lenet5_modern")),
    ),
    run_case(
        "runs/run.json num_classes edited: weights do not fit",
        ["evaluate", "{run}"],
        "the weights do not fit the model",
        edit_meta(lambda m: m.update(num_classes=5, classes=list("abcde"))),
    ),
    run_case(
        "runs/run.json data sizes not numbers: diagnose",
        ["diagnose", "{run}"],
        "run.json: field 'data.sizes' must be a mapping of split names to image counts",
        edit_meta(lambda m: m["data"].update(sizes={"train": "many"})),
    ),
    run_case(
        "runs/no run.json: evaluate",
        ["evaluate", "{run}"],
        "not a cnnlab run folder (no run.json)",
        remove("run/run.json"),
    ),
    Case("runs/run folder missing: predict", ["predict", "{tmp}/nowhere", "{mnist}"], "run folder not found"),
    Case(
        "runs/run folder is a file: evaluate",
        ["evaluate", "{tmp}/file"],
        "is a file, not a run folder",
        setup=write("file", "x"),
    ),
    run_case(
        "runs/run.json is a folder: filters",
        ["filters", "{run}"],
        "not a cnnlab run folder",
        lambda tmp: ((tmp / "run/run.json").unlink(), (tmp / "run/run.json").mkdir()),
    ),
]

RESULTS_CASES = [
    run_case(
        "runs/results.json not JSON: diagnose",
        ["diagnose", "{run}"],
        "results.json: line 1, column 2: not valid JSON",
        write("run/results.json", "{'test': 1}\n"),
    ),
    run_case(
        "runs/results.json truncated: report",
        ["report", "{run}", "--gradcam", "0"],
        "results.json: line",
        truncate("run/results.json"),
        check=absent("run/report.html"),
    ),
    run_case(
        "runs/results.json a list: report",
        ["report", "{run}"],
        "results.json: expected a JSON object",
        write("run/results.json", "[]\n"),
    ),
    run_case(
        "runs/results.json empty: diagnose",
        ["diagnose", "{run}"],
        "results.json: empty file",
        write("run/results.json", ""),
    ),
    run_case(
        "runs/results.json split not a name: diagnose",
        ["diagnose", "{run}"],
        "results.json: field 'evaluated_split' must be a split name",
        edit_meta(put("evaluated_split", 3), "run/results.json"),
    ),
    run_case(
        "runs/results.json metric a string: diagnose",
        ["diagnose", "{run}"],
        "must be a number",
        edit_meta(lambda r: r[r["evaluated_split"]].update(macro_f1="high"), "run/results.json"),
    ),
    run_case(
        "runs/results.json best_epoch a string: report",
        ["report", "{run}"],
        "field 'best_epoch' must be a positive integer",
        edit_meta(put("best_epoch", "1"), "run/results.json"),
    ),
]

METRICS_CASES = [
    run_case(
        "runs/metrics.jsonl bad line: diagnose",
        ["diagnose", "{run}"],
        "metrics.jsonl: line 2, column 2: not valid JSON",
        lambda tmp: (tmp / "run/metrics.jsonl").open("a").write("{not json}\n"),
    ),
    run_case(
        "runs/metrics.jsonl truncated: report",
        ["report", "{run}"],
        "metrics.jsonl: line 1, column",
        truncate("run/metrics.jsonl"),
    ),
    run_case(
        "runs/metrics.jsonl line not an object: diagnose",
        ["diagnose", "{run}"],
        "metrics.jsonl: line 2: expected a JSON object",
        lambda tmp: (tmp / "run/metrics.jsonl").open("a").write("[1, 2]\n"),
    ),
    run_case(
        "runs/metrics.jsonl value a string: diagnose",
        ["diagnose", "{run}"],
        "metrics.jsonl: line 1: 'val_loss' must be a number",
        write("run/metrics.jsonl", '{"epoch": 1, "train_loss": 0.5, "val_loss": "low"}\n'),
    ),
    run_case(
        "runs/metrics.jsonl empty: diagnose",
        ["diagnose", "{run}"],
        "the run has not finished an epoch",
        write("run/metrics.jsonl", ""),
    ),
    run_case(
        "runs/metrics.jsonl binary: report",
        ["report", "{run}"],
        "metrics.jsonl: not a text file",
        write("run/metrics.jsonl", b"\xff\xfe\x00\x01"),
    ),
    run_case(
        "runs/metrics.csv not a number: diagnose",
        ["diagnose", "{run}"],
        "metrics.csv: line 2: 'train_loss'",
        lambda tmp: (
            (tmp / "run/metrics.jsonl").unlink(),
            (tmp / "run/metrics.csv").write_text("epoch,train_loss\n1,abc\n"),
        ),
    ),
    run_case(
        "runs/no metrics at all: diagnose",
        ["diagnose", "{run}"],
        "no metrics.jsonl or metrics.csv",
        lambda tmp: ((tmp / "run/metrics.jsonl").unlink(), (tmp / "run/metrics.csv").unlink()),
    ),
]

CONFIG_CASES = [
    run_case(
        "runs/config.yaml not YAML: evaluate",
        ["evaluate", "{run}"],
        "config.yaml: line 3, column 7",
        write("run/config.yaml", BAD_YAML),
    ),
    run_case(
        "runs/config.yaml empty: evaluate",
        ["evaluate", "{run}"],
        "config.yaml: empty file",
        write("run/config.yaml", ""),
        check=absent("run/evaluation_test.json"),
    ),
    run_case(
        "runs/config.yaml a list: diagnose",
        ["diagnose", "{run}"],
        "config.yaml: expected a mapping",
        write("run/config.yaml", "- a\n- b\n"),
    ),
    run_case(
        "runs/config.yaml wrong type: evaluate",
        ["evaluate", "{run}"],
        "config.yaml: config field 'seed': cannot read 'abc' as int",
        replace_line("run/config.yaml", "seed:", "seed: abc"),
    ),
    run_case(
        "runs/config.yaml wrong type: diagnose",
        ["diagnose", "{run}"],
        "config field 'epochs'",
        replace_line("run/config.yaml", "epochs:", "epochs: many"),
    ),
    run_case(
        "runs/config.yaml unknown field: diagnose",
        ["diagnose", "{run}"],
        "unknown config field 'epocs'",
        lambda tmp: (tmp / "run/config.yaml").open("a").write("epocs: 3\n"),
    ),
    run_case(
        "runs/config.yaml missing data: evaluate",
        ["evaluate", "{run}"],
        "config.yaml: missing field 'data'",
        replace_line("run/config.yaml", "data:", ""),
    ),
    run_case("runs/config.yaml missing: evaluate", ["evaluate", "{run}"], "no config.yaml", remove("run/config.yaml")),
    run_case(
        "runs/config.yaml truncated: report",
        ["report", "{run}"],
        "config.yaml",
        write("run/config.yaml", "model: lenet5_modern\ndata: '/x\n"),
    ),
    run_case(
        "runs/config.yaml not YAML: diagnose --data-fractions",
        ["diagnose", "{run}", "--data-fractions", "0.5,1"],
        "config.yaml: line 3, column 7",
        write("run/config.yaml", BAD_YAML),
    ),
    run_case(
        "runs/config.yaml not YAML: train --resume",
        ["train", "--resume", "{run}", "--quiet"],
        "config.yaml: line 3, column 7",
        write("run/config.yaml", BAD_YAML),
    ),
    run_case(
        "runs/config.yaml empty: train --resume",
        ["train", "--resume", "{run}", "--quiet"],
        "config.yaml: empty file",
        write("run/config.yaml", ""),
    ),
    run_case(
        "runs/config.yaml a list: train --resume",
        ["train", "--resume", "{run}", "--quiet"],
        "config.yaml: expected a mapping",
        write("run/config.yaml", "- a\n"),
    ),
    run_case(
        "runs/config.yaml wrong section type: diagnose",
        ["diagnose", "{run}"],
        "config.yaml: config field 'optimizer' must be a mapping",
        lambda tmp: (tmp / "run/config.yaml").open("a").write("optimizer: 5\n"),
    ),
    run_case(
        "runs/config.yaml wrong type: train --resume",
        ["train", "--resume", "{run}", "--quiet"],
        "config field 'seed'",
        replace_line("run/config.yaml", "seed:", "seed: [1, 2]"),
    ),
]

OUTPUT_CASES = [
    run_case(
        "runs/report --out under a file",
        ["report", "{run}", "--out", "{tmp}/file/report.html"],
        "file: not a folder",
        write("file", "x"),
    ),
    run_case(
        "runs/report --out an existing folder",
        ["report", "{run}", "--out", "{tmp}/folder"],
        "folder: is a folder; give a file name",
        lambda tmp: (tmp / "folder").mkdir(),
    ),
    run_case(
        "runs/filters --out under a file",
        ["filters", "{run}", "--out", "{tmp}/file/f.png"],
        "file: not a folder",
        write("file", "x"),
    ),
    run_case(
        "runs/filters --out an existing folder",
        ["filters", "{run}", "--out", "{tmp}/run"],
        "run: is a folder; give a file name",
    ),
    run_case(
        "runs/explain --out an existing file",
        ["explain", "{run}", "{tmp}/x.png", "--out", "{tmp}/file"],
        "file: not a folder",
        write("file", "x"),
    ),
    run_case(
        "runs/diagnose --write-config under a file",
        ["diagnose", "{run}", "--write-config", "{tmp}/file/f.yaml"],
        "file: not a folder",
        write("file", "x"),
    ),
    run_case(
        "runs/diagnose --write-config an existing folder",
        ["diagnose", "{run}", "--write-config", "{tmp}/run"],
        "is a folder; give a file name",
    ),
    Case(
        "runs/learning-curve --out an existing file",
        ["learning-curve", "--model", "lenet5_modern", "--data", "{mnist}", "--out", "{tmp}/file"],
        "file: not a folder",
        setup=write("file", "x"),
    ),
]

YAML_CASES = [
    Case(
        "yaml/train --config unclosed mapping",
        [*train_args("--config", "{tmp}/c.yaml")],
        "c.yaml: line 3, column 7",
        setup=write("c.yaml", BAD_YAML),
    ),
    Case(
        "yaml/train --config tab indentation",
        [*train_args("--config", "{tmp}/c.yaml")],
        "c.yaml: line 3, column 1",
        setup=write("c.yaml", TAB_YAML),
    ),
    Case(
        "yaml/train --config unclosed quote",
        [*train_args("--config", "{tmp}/c.yaml")],
        "c.yaml: line",
        setup=write("c.yaml", CLOSED_STRING_YAML),
    ),
    Case(
        "yaml/train --config message names the parser's problem",
        [*train_args("--config", "{tmp}/c.yaml")],
        "not valid YAML: ",
        setup=write("c.yaml", "a: b: c\n"),
    ),
    Case(
        "yaml/train --config binary",
        [*train_args("--config", "{tmp}/c.yaml")],
        "c.yaml: not a text file",
        setup=write("c.yaml", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
    ),
    Case("yaml/train --config missing", [*train_args("--config", "{tmp}/none.yaml")], "none.yaml: no such config file"),
    Case("yaml/train --config a folder", [*train_args("--config", "{tmp}")], "is a folder, not a YAML file"),
    Case(
        "yaml/train --config a scalar",
        [*train_args("--config", "{tmp}/c.yaml")],
        "expected a mapping of config fields",
        setup=write("c.yaml", "just some words\n"),
    ),
    Case(
        "yaml/learning-curve --config syntax error",
        ["learning-curve", "--config", "{tmp}/c.yaml"],
        "c.yaml: line 3, column 7",
        setup=write("c.yaml", BAD_YAML),
    ),
    Case(
        "yaml/summary layer list syntax error",
        ["summary", "{tmp}/net.yaml"],
        "mapping that began at line 3, column 11",
        setup=write("net.yaml", "input: 1x28x28\nlayers:\n  - conv: {out: 8\n  - relu\n"),
    ),
]

CLI_CASES = [
    Case("cli/unknown flag", ["evaluate", "{tmp}", "--bogus"], "unrecognized arguments: --bogus", exit_code=2),
    Case(
        "cli/unknown flag points at the command's help",
        ["evaluate", "{tmp}", "--bogus"],
        "see `cnnlab evaluate --help`",
        exit_code=2,
    ),
    Case(
        "cli/--top-k not a number",
        ["predict", "{tmp}", "x.png", "--top-k", "abc"],
        "argument --top-k: invalid int value: 'abc'",
        exit_code=2,
    ),
    Case("cli/missing run argument", ["evaluate"], "the following arguments are required: run", exit_code=2),
    Case("cli/missing flag value", ["filters", "{tmp}", "--out"], "argument --out: expected one argument", exit_code=2),
    Case(
        "cli/bad choice",
        ["evaluate", "{tmp}", "--split", "dev"],
        "argument --split: invalid choice: 'dev'",
        exit_code=2,
    ),
    Case(
        "cli/unknown command with a suggestion",
        ["evalute", "run"],
        "unknown command 'evalute' (did you mean 'evaluate'?)",
        exit_code=2,
    ),
    Case("cli/unknown top-level flag", ["--bogus"], "unrecognized arguments: --bogus", exit_code=2),
    Case(
        "cli/exclusive flags",
        ["predict", "{tmp}", "x.png", "--json", "--csv"],
        "not allowed with argument",
        exit_code=2,
    ),
    Case(
        "cli/diagnose --epochs not a number",
        ["diagnose", "{tmp}", "--epochs", "ten"],
        "invalid int value: 'ten'",
        exit_code=2,
    ),
    Case("cli/train flag without value", ["train", "--epochs"], "see `cnnlab train --help`", exit_code=2),
    Case(
        "cli/--debug after the command is not an unknown flag",
        ["evaluate", "{tmp}/x", "--debug", "--batch-size", "x"],
        "invalid int value: 'x'",
        exit_code=2,
    ),
]

CASES = RUN_JSON_CASES + RESULTS_CASES + METRICS_CASES + CONFIG_CASES + OUTPUT_CASES + YAML_CASES + CLI_CASES
