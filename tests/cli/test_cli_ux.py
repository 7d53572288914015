"""The command line as people expect it: --version, no prefix matching, short aliases, a grouped `train --help`,
mistakes refused before the data is read, and `cnnlab models` in a fraction of a second."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnlab.cli import COMMANDS, build_parser, main, models_cmd, models_table, train_flags
from cnnlab.config import load_config, overrides_from_args
from cnnlab.tasks.classification.task import ClassificationTask
from cnnlab.train.config import TrainConfig
from cnnlab.train.preflight import preflight

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


def error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def train_config(argv: list[str]) -> TrainConfig:
    args = build_parser(["train", *argv]).parse_args(["train", *argv])
    return load_config(TrainConfig, None, overrides_from_args(args, TrainConfig))


# -- --version ----------------------------------------------------------------------------------------------
def test_version_names_cnnlab_torch_torchvision_and_python(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(r"cnnlab \d+\.\d+\.\d+\S* \(torch \S+, torchvision \S+, python \d+\.\d+\.\d+\)", out), out


def test_version_imports_no_torch():
    code = "import sys; from cnnlab.cli import main; main(['--version']); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False"


# -- unknown and abbreviated flags --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["train", "--epoch", "3"], "(did you mean --epochs?)"),  # argparse alone would read it as --epochs
        (["train", "--epoch=3"], "(did you mean --epochs?)"),
        (["train", "-lr", "0.1"], "(did you mean --lr?)"),
        (["train", "--momentum", "0.8"], "(did you mean --optimizer.momentum?)"),
        (["train", "--patience", "3"], "(did you mean --schedule.patience or --early-stopping.patience?)"),
        (["train", "--ouput", "x"], "(did you mean --out?)"),
        (["evaluate", "runs/x", "--spl", "test"], "(did you mean --split?)"),
    ],
)
def test_an_unknown_or_abbreviated_flag_is_one_line_exit_2_with_a_suggestion(capsys, argv, suggestion):
    assert main(argv) == 2
    line = error_line(capsys)
    assert line.startswith("cnnlab: error: unrecognized arguments: ") and suggestion in line
    assert line.endswith(f"; see `cnnlab {argv[0]} --help`")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_matches_flag_prefixes(command):
    parser = build_parser([command]).command_parsers[command]
    assert parser.allow_abbrev is False


def test_a_flag_with_no_likely_meaning_gets_no_guess(capsys):
    assert main(["tasks", "--zzzz"]) == 2
    assert error_line(capsys) == "cnnlab: error: unrecognized arguments: --zzzz; see `cnnlab tasks --help`"


# -- short aliases ------------------------------------------------------------------------------------------
def test_short_aliases_fill_the_fields_people_type_most():
    config = train_config(["-m", "vgg11", "-d", "some/data", "-e", "3", "-b", "16", "--lr", "0.5", "-o", "out/x"])
    assert (config.model, config.data, config.epochs, config.batch_size) == ("vgg11", "some/data", 3, 16)
    assert config.optimizer.lr == 0.5 and config.out == "out/x"
    assert train_config(["--bs", "32"]).batch_size == 32
    assert train_config(["-e3"]).epochs == 3


def test_the_yaml_spelling_of_a_flag_still_works_but_is_not_listed(capsys):
    assert train_config(["--batch_size", "8"]).batch_size == 8
    assert main(["train", "--help"]) == 0
    assert "--batch_size" not in capsys.readouterr().out


# -- train --help -------------------------------------------------------------------------------------------
def _train_parser():
    parser = build_parser(["train"])
    return parser.command_parsers["train"]


def test_train_help_is_grouped_in_the_order_people_think_of_a_run(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    titles = [train_flags.MODEL, train_flags.DATA, train_flags.OPTIMISATION, train_flags.REGULARISATION]
    titles += [train_flags.RUN, train_flags.DEVICE]
    positions = [out.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions)
    assert out.startswith("usage: cnnlab train [OPTIONS]")
    assert re.search(r"-e INT, --epochs INT\s+passes over the training data \(default: 10\)", out)
    assert re.search(r"-b INT, --bs INT, --batch-size INT\s+images per training step \(default: 128\)", out)


def test_every_training_flag_sits_in_a_section_with_a_type_a_default_and_help():
    groups = {group.title: group._group_actions for group in _train_parser()._action_groups if group._group_actions}
    assert {action.dest for action in groups.pop("options")} == {"help", "config"}
    assert set(groups) == set(train_flags.SECTIONS.values())
    for title, actions in groups.items():
        for action in actions:
            if action.help == "==SUPPRESS==":  # the hidden YAML spelling (--batch_size)
                continue
            flag = action.option_strings[-1]
            assert action.help and len(action.help) < 200, f"{title}: {flag} has no one-line help"
            is_field = "." in action.dest or action.dest in TrainConfig.__dataclass_fields__
            if is_field:
                assert "default" in action.help, f"{flag}: no default in {action.help!r}"
                assert (
                    action.nargs == 0
                    or action.metavar in {"INT", "FLOAT", "TEXT", "VALUE"}
                    or "," in (action.metavar or "")
                ), f"{flag}: metavar {action.metavar!r} does not say the type"


# -- mistakes refused before the data is read ---------------------------------------------------------------
@pytest.fixture
def data_reads(monkeypatch) -> list:
    """Every call of the task's load_data, which a refused run must never reach."""
    calls: list = []
    original = ClassificationTask.load_data

    def load_data(self, config):
        calls.append(config.data)
        return original(self, config)

    monkeypatch.setattr(ClassificationTask, "load_data", load_data)
    return calls


@pytest.mark.parametrize(
    ("flags", "phrase"),
    [
        (["-m", "lenet"], "unknown model 'lenet' (did you mean 'lenet5'?)"),
        (["-m", "missing.yaml"], "missing.yaml: config file not found"),
        (["-m", "{tmp}/net.yaml"], "net.yaml: missing the `layers:` list"),
        (["--model-options", "widht=2"], "model 'lenet5_modern' has no option 'widht'; its options: dropout"),
        (["-m", "vgg11", "--model-options", "batchnorm=1"], "has no option 'batchnorm' (did you mean 'batch_norm'?)"),
        (["-d", "{tmp}/nowhere"], "nowhere: data path does not exist"),
        (["--test-data", "{tmp}/nowhere"], "nowhere: test data path does not exist"),
        (["--task", "clasification"], "unknown task 'clasification'; did you mean 'classification'?"),
    ],
)
def test_a_wrong_model_data_path_or_option_is_refused_before_the_data_is_read(
    tmp_path, capsys, data_reads, flags, phrase
):
    (tmp_path / "net.yaml").write_text("input: 1x28x28\n")
    argv = ["train", "-m", "lenet5_modern", "-d", str(MNIST), "--train-samples", "100", "-e", "1"]
    argv += ["-o", str(tmp_path / "out"), *(flag.replace("{tmp}", str(tmp_path)) for flag in flags)]
    assert main(argv) == 1
    assert phrase in error_line(capsys)
    assert data_reads == [], "the data was read before the mistake was reported"
    assert not (tmp_path / "out").exists()


def test_preflight_takes_a_named_data_set_and_what_build_run_was_handed():
    preflight(TrainConfig(model="lenet5", data="mnist"))  # no folder called mnist here: the shipped data set
    preflight(TrainConfig(model="not-a-model", data=""), check_model=False, check_data=False)


# -- cnnlab models ------------------------------------------------------------------------------------------
def test_models_answers_without_importing_torch():
    code = "import sys; from cnnlab.cli import main; main(['models']); print('torch' in sys.modules)"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    assert done.stdout.splitlines()[-1] == "False", "cnnlab models imported torch: the table is stale or unused"
    assert "resnet50" in done.stdout and "25,557,032" in done.stdout
    assert seconds < 5  # about 0.2 s on the idle 2-core machine (10.7 s when every model was built)


def test_the_models_table_is_current():
    assert models_table.SOURCE_HASH == models_cmd.source_hash(), (
        "the model zoo's code changed: rewrite the table with `python -m cnnlab.cli.models_cmd`"
    )


def test_the_table_module_is_what_the_writer_writes():
    text = models_cmd._table_module(models_table.MODELS, models_table.SOURCE_HASH)
    assert Path(models_table.__file__).read_text() == text


@pytest.mark.slow
def test_the_models_table_equals_the_real_computation():
    records, failed = models_cmd.computed_records()
    assert not failed and records == models_table.MODELS


def test_models_computes_live_when_the_sources_changed(monkeypatch):
    live = [{"name": "live", "params": 1, "macs": 2, "default_input": [1, 2, 2], "default_classes": 2, "paper": "p"}]
    monkeypatch.setattr(models_cmd, "source_hash", lambda: "changed")
    monkeypatch.setattr(models_cmd, "computed_records", lambda: (live, False))
    assert models_cmd.zoo_records() == (live, False)


def test_the_table_counts_as_the_summary_does():
    from cnnlab.summary import format_count

    for value in (0, 7, 999, 1000, 415_680, 4_089_184_256, 3.2e12):
        assert models_cmd.format_count(value) == format_count(value)
