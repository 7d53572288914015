"""Bad-input cases: every option out of its range, NaN and inf where a number is expected, a loss that diverges,
and an export of non-finite weights or with an opset the exporter lacks.

An option is refused where it is parsed, before any data is read or any file written: the message names the
field as a user types it and the allowed range (`config field 'optimizer.lr' must be a finite number > 0, got -1.0`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from tests.badinput.cases import Case, train_args

Check = Callable[[Path], None]


def nothing_written(tmp: Path) -> None:
    assert not (tmp / "out").exists(), "a refused option must not create the run folder"


def option(name: str, flags: list[str], phrase: str) -> Case:
    """A training command whose flags hold one bad value: refused before anything is written."""
    return Case(f"options/{name}", train_args(*flags), phrase, check=nothing_written)


def field(name: str, rule: str, got: str) -> str:
    return f"config field '{name}' must be {rule}, got {got}"


POSITIVE = "a finite number > 0"
NON_NEGATIVE = "a finite number >= 0"
FRACTION = "a finite number in [0, 1)"
COUNT = "a whole number >= 1"


def yaml_config(values: dict) -> Callable[[Path], None]:
    """Setup: write `values` as tmp/c.yaml (YAML's own `.nan` and `.inf` included)."""

    def setup(tmp: Path) -> None:
        (tmp / "c.yaml").write_text(yaml.safe_dump(values))

    return setup


def yaml_option(name: str, values: dict, phrase: str) -> Case:
    return Case(
        f"options/yaml {name}",
        train_args("--config", "{tmp}/c.yaml"),
        phrase,
        setup=yaml_config(values),
        check=nothing_written,
    )


OPTION_CASES = [
    # sizes and counts
    option("batch size 0", ["--batch-size", "0"], field("batch_size", COUNT, "0")),
    option("batch size negative", ["--batch-size", "-8"], field("batch_size", COUNT, "-8")),
    option("batch size fractional", ["--batch-size", "3.5"], "config field 'batch_size': cannot read '3.5' as int"),
    option("batch size nan", ["--batch-size", "nan"], "config field 'batch_size': cannot read 'nan' as int"),
    option("eval batch size 0", ["--eval-batch-size", "0"], field("eval_batch_size", COUNT, "0")),
    option("epochs 0", ["--epochs", "0"], field("epochs", COUNT, "0")),
    option("epochs negative", ["--epochs", "-3"], field("epochs", COUNT, "-3")),
    option("train samples 0", ["--train-samples", "0"], field("train_samples", COUNT, "0")),
    option("threads 0", ["--threads", "0"], field("threads", COUNT, "0")),
    option("threads negative", ["--threads", "-2"], field("threads", COUNT, "-2")),
    option("workers negative", ["--workers", "-1"], field("workers", "a whole number >= 0", "-1")),
    option("val split 1", ["--val-split", "1"], field("val_split", FRACTION, "1.0")),
    option("val split negative", ["--val-split", "-0.1"], field("val_split", FRACTION, "-0.1")),
    option("val split nan", ["--val-split", "nan"], field("val_split", FRACTION, "nan")),
    option("seed negative", ["--seed", "-1"], field("seed", "a whole number in [0, 4294967295]", "-1")),
    option("seed over 32 bits", ["--seed", str(2**32)], field("seed", "a whole number in [0, 4294967295]", str(2**32))),
    option("resize 0", ["--resize", "0"], field("resize", "1 or 2 or 3 values, each a whole number >= 1", "(0,)")),
    option(
        "resize three values", ["--resize", "32,32,3"], "holds 2-D images; expected H,W (or one number for a square)"
    ),
    option("window unknown", ["--window", "lungs"], "config field 'window' must be lung, mediastinum, soft_tissue"),
    option("class weights text", ["--class-weights", "heavy"], "config field 'class_weights' must be balanced or one"),
    option("class weights count", ["--class-weights", "1,2,3"], "class_weights: 3 weights for 10 classes"),
    option("focal gamma negative", ["--focal-gamma", "-1"], "config field 'focal_gamma' must be"),
    option("target sensitivity 1", ["--target-sensitivity", "1"], "config field 'target_sensitivity' must be"),
    option("sampler unknown", ["--sampler", "weighted"], "config field 'sampler' must be one of shuffle, balanced"),
    option("channels 2", ["--channels", "2"], field("channels", "one of 1, 3", "2")),
    # the optimizer
    option("lr negative", ["--optimizer.lr", "-1"], field("optimizer.lr", POSITIVE, "-1.0")),
    option("lr zero", ["--optimizer.lr", "0"], field("optimizer.lr", POSITIVE, "0.0")),
    option("lr nan", ["--optimizer.lr", "nan"], field("optimizer.lr", POSITIVE, "nan")),
    option("lr inf", ["--optimizer.lr", "inf"], field("optimizer.lr", POSITIVE, "inf")),
    option("lr text", ["--optimizer.lr", "fast"], "config field 'optimizer.lr': cannot read 'fast' as float"),
    option("momentum 1", ["--optimizer.momentum", "1"], field("optimizer.momentum", FRACTION, "1.0")),
    option("momentum negative", ["--optimizer.momentum", "-0.5"], field("optimizer.momentum", FRACTION, "-0.5")),
    option("momentum nan", ["--optimizer.momentum", "nan"], field("optimizer.momentum", FRACTION, "nan")),
    option(
        "beta 1",
        ["--optimizer.name", "adam", "--optimizer.betas", "0.9,1.0"],
        field("optimizer.betas", "2 values, each " + FRACTION, "(0.9, 1.0)"),
    ),
    option("three betas", ["--optimizer.betas", "0.9,0.99,0.999"], "'optimizer.betas' must be 2 values"),
    option(
        "beta nan",
        ["--optimizer.betas", "0.9,nan"],
        field("optimizer.betas", "2 values, each " + FRACTION, "(0.9, nan)"),
    ),
    option(
        "weight decay negative",
        ["--optimizer.weight-decay=-1e-4"],
        field("optimizer.weight_decay", NON_NEGATIVE, "-0.0001"),
    ),
    option(
        "weight decay inf", ["--optimizer.weight-decay", "inf"], field("optimizer.weight_decay", NON_NEGATIVE, "inf")
    ),
    option(
        "nesterov without momentum",
        ["--optimizer.name", "sgd", "--optimizer.nesterov", "--optimizer.momentum", "0"],  # sgd: no longer the default
        "config field 'optimizer.nesterov' needs optimizer.momentum > 0",
    ),
    option(
        "optimizer name",
        ["--optimizer.name", "sgdd"],
        field("optimizer.name", "one of sgd, adam, adamw, adadelta", "'sgdd'"),
    ),
    # the schedule
    option(
        "step size 0", ["--schedule.name", "step", "--schedule.step-size", "0"], field("schedule.step_size", COUNT, "0")
    ),
    option(
        "milestones decreasing",
        ["--schedule.name", "multistep", "--schedule.milestones", "60,30"],
        field("schedule.milestones", "a list of values in increasing order, each " + COUNT, "(60, 30)"),
    ),
    option(
        "milestone 0", ["--schedule.milestones", "0,30"], "config field 'schedule.milestones' must be a list of values"
    ),
    option("gamma 0", ["--schedule.gamma", "0"], field("schedule.gamma", POSITIVE, "0.0")),
    option("gamma negative", ["--schedule.gamma", "-0.1"], field("schedule.gamma", POSITIVE, "-0.1")),
    option("gamma nan", ["--schedule.gamma", "nan"], field("schedule.gamma", POSITIVE, "nan")),
    option(
        "plateau gamma above 1",
        ["--schedule.name", "plateau", "--schedule.gamma", "1.5"],
        "'schedule.gamma' must be a finite number in (0, 1) for the plateau schedule",
    ),
    option(
        "warmup negative", ["--schedule.warmup-epochs", "-1"], field("schedule.warmup_epochs", NON_NEGATIVE, "-1.0")
    ),
    option(
        "warmup longer than the run",
        ["--schedule.warmup-epochs", "5"],
        "config field 'schedule.warmup_epochs' must be at most the run's 1 epochs, got 5.0",
    ),
    option(
        "pct start 0", ["--schedule.pct-start", "0"], field("schedule.pct_start", "a finite number in (0, 1)", "0.0")
    ),
    option(
        "pct start 1.5",
        ["--schedule.pct-start", "1.5"],
        field("schedule.pct_start", "a finite number in (0, 1)", "1.5"),
    ),
    option(
        "schedule name",
        ["--schedule.name", "cosin"],
        field("schedule.name", "one of none, constant, step, multistep, cosine, onecycle, plateau", "'cosin'"),
    ),
    option("min lr negative", ["--schedule.min-lr", "-0.1"], field("schedule.min_lr", NON_NEGATIVE, "-0.1")),
    option(
        "plateau patience negative",
        ["--schedule.patience", "-1"],
        field("schedule.patience", "a whole number >= 0", "-1"),
    ),
    # regularisation
    option("label smoothing 1", ["--label-smoothing", "1"], field("label_smoothing", FRACTION, "1.0")),
    option("label smoothing negative", ["--label-smoothing", "-0.1"], field("label_smoothing", FRACTION, "-0.1")),
    option("dropout 1", ["--dropout", "1"], field("dropout", FRACTION, "1.0")),
    option("dropout nan", ["--dropout", "nan"], field("dropout", FRACTION, "nan")),
    option(
        "model option dropout 1.5", ["--model-options", "dropout=1.5"], field("model_options.dropout", FRACTION, "1.5")
    ),
    option(
        "model option nan",
        ["--model-options", "dropout=.nan"],
        "config field 'model_options.dropout' must be a finite number, got nan",
    ),
    option(
        "model option nan text",
        ["--model-options", "width=nan"],
        "config field 'model_options.width' must be a finite number",
    ),
    option("grad clip 0", ["--grad-clip", "0"], field("grad_clip", POSITIVE, "0.0")),
    option("grad clip negative", ["--grad-clip", "-1"], field("grad_clip", POSITIVE, "-1.0")),
    option("grad clip nan", ["--grad-clip", "nan"], field("grad_clip", POSITIVE, "nan")),
    option("l1 negative", ["--l1=-1e-5"], field("l1", NON_NEGATIVE, "-1e-05")),
    option("l1 inf", ["--l1", "inf"], field("l1", NON_NEGATIVE, "inf")),
    option("l2 nan", ["--l2", "nan"], field("l2", NON_NEGATIVE, "nan")),
    # early stopping
    option(
        "early stopping mode",
        ["--early-stopping.mode", "maximum"],
        field("early_stopping.mode", "one of min, max, auto", "'maximum'"),
    ),
    option("patience 0", ["--early-stopping.patience", "0"], field("early_stopping.patience", COUNT, "0")),
    option(
        "min delta negative",
        ["--early-stopping.min-delta", "-0.1"],
        field("early_stopping.min_delta", NON_NEGATIVE, "-0.1"),
    ),
    option(
        "min delta nan", ["--early-stopping.min-delta", "nan"], field("early_stopping.min_delta", NON_NEGATIVE, "nan")
    ),
    # how to run
    option("precision fp8", ["--precision", "fp8"], field("precision", "one of fp32, bf16, fp16", "'fp8'")),
    option("precision upper case", ["--precision", "FP16"], field("precision", "one of fp32, bf16, fp16", "'FP16'")),
    option("device gpu", ["--device", "gpu"], field("device", "auto, cpu, cuda, cuda:N or mps", "'gpu'")),
    option("device index text", ["--device", "cuda:x"], field("device", "auto, cpu, cuda, cuda:N or mps", "'cuda:x'")),
    Case("options/nproc 0", ["train", "--nproc", "0"], "--nproc must be a whole number >= 1, got '0'"),
    Case("options/nproc text", ["train", "--nproc", "two"], "--nproc must be a whole number >= 1, got 'two'"),
    # augmentation
    option(
        "augment rotate nan", ["--augment", "rotate=nan"], field("augment.rotate", "a finite number in [0, 180]", "nan")
    ),
    option(
        "augment rotate yaml nan",
        ["--augment", "rotate=.nan"],
        field("augment.rotate", "a finite number in [0, 180]", "nan"),
    ),
    option(
        "augment rotate 200",
        ["--augment", "rotate=200"],
        field("augment.rotate", "a finite number in [0, 180]", "200.0"),
    ),
    option("augment scale 1", ["--augment", "scale=1"], field("augment.scale", "a finite number in [0, 1)", "1.0")),
    option("augment shear 90", ["--augment", "shear=90"], field("augment.shear", "a finite number in [0, 89]", "90.0")),
    option(
        "augment translate inf",
        ["--augment", "translate=.inf"],
        field("augment.translate", "a finite number in [0, 1]", "inf"),
    ),
    option("augment erase 1.5", ["--augment", "erase=1.5"], field("augment.erase", "a finite number in [0, 1]", "1.5")),
    option(
        "augment crop 2.5", ["--augment", "crop=2.5"], field("augment.crop", "a whole number of pixels >= 0", "2.5")
    ),
    option(
        "augment crop negative", ["--augment", "crop=-4"], field("augment.crop", "a whole number of pixels >= 0", "-4")
    ),
    option("augment mixup inf", ["--augment", "mixup=inf"], field("augment.mixup", "a finite number >= 0", "inf")),
    option("augment mixup text", ["--augment", "mixup=lots"], field("augment.mixup", "a finite number >= 0", "'lots'")),
    option(
        "augment jitter negative", ["--augment", "jitter=-0.4"], field("augment.jitter", "a finite number >= 0", "-0.4")
    ),
    option(
        "augment flip maybe",
        ["--augment", "flip=maybe"],
        "config field 'augment.flip' must be true or false, got 'maybe'",
    ),
    option("augment unknown", ["--augment", "rotation=10"], "unknown augmentation 'rotation' (did you mean 'rotate'?)"),
    # the same rules for a YAML file (named in the message)
    yaml_option("lr nan", {"optimizer": {"lr": math.nan}}, "c.yaml: " + field("optimizer.lr", POSITIVE, "nan")),
    yaml_option("lr inf", {"optimizer": {"lr": math.inf}}, "c.yaml: " + field("optimizer.lr", POSITIVE, "inf")),
    yaml_option("betas one value", {"optimizer": {"betas": [0.9]}}, "'optimizer.betas' must be 2 values"),
    yaml_option(
        "augment nan", {"augment": {"erase": math.nan}}, field("augment.erase", "a finite number in [0, 1]", "nan")
    ),
    yaml_option("dropout inf", {"dropout": math.inf}, field("dropout", FRACTION, "inf")),
    Case(
        "options/resume with a bad override",
        ["train", "--resume", "{run}", "--optimizer.lr", "-1"],
        field("optimizer.lr", POSITIVE, "-1.0"),
        needs_run=True,
        setup=lambda tmp: (tmp / "config_before.yaml").write_bytes((tmp / "run" / "config.yaml").read_bytes()),
        check=lambda tmp: _same_file(tmp / "config_before.yaml", tmp / "run" / "config.yaml"),
    ),
]


def _same_file(before: Path, after: Path) -> None:
    assert before.read_bytes() == after.read_bytes(), f"{after} changed"


# -- a loss that diverges -----------------------------------------------------------------------------------
def diverged_folder_kept(tmp: Path) -> None:
    """metrics.jsonl holds the diverged epoch; no results.json; no checkpoint of NaN weights."""
    out = tmp / "out"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and not math.isfinite(rows[-1]["train_loss"]), rows
    assert not (out / "results.json").exists()
    for name in ("last.pt", "best.pt"):
        if (out / name).exists():
            state = torch.load(out / name, weights_only=False)
            assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point()), name


DIVERGENCE_CASES = [
    Case(
        "divergence/learning rate far too high",
        train_args("--optimizer.lr", "1e12", "--batch-size", "16"),
        "training diverged: the loss became",
        check=diverged_folder_kept,
    ),
    Case(
        "divergence/the message says what to try",
        train_args("--optimizer.lr", "1e12", "--batch-size", "16"),
        "the learning rate is likely too high for this model: try --optimizer.lr 1e+11 or --grad-clip 1",
    ),
    Case(
        "divergence/adam with a huge rate",
        train_args("--optimizer.name", "adam", "--optimizer.lr", "1e30", "--batch-size", "16", "--grad-clip", "1"),
        "try --optimizer.lr 1e+29;",
        check=diverged_folder_kept,
    ),
]


# -- export -------------------------------------------------------------------------------------------------
def poison_weights(checkpoint: str = "best.pt", value: float = math.nan) -> Callable[[Path], None]:
    """Setup: overwrite the first weight of the run's checkpoint with NaN (a diverged run's weights)."""

    def setup(tmp: Path) -> None:
        path = tmp / "run" / checkpoint
        state = torch.load(path, weights_only=False)
        name = next(k for k, v in state["model"].items() if v.is_floating_point())
        state["model"][name].view(-1)[0] = value
        torch.save(state, path)

    return setup


def no_export_written(tmp: Path) -> None:
    assert not (tmp / "run" / "model.onnx").exists() and not (tmp / "run" / "model.pt").exists()


EXPORT_CASES = [
    Case(
        "export/nan weights",
        ["export", "{run}"],
        "cannot export: parameter 'features.0.weight' holds NaN or infinite values",
        needs_run=True,
        setup=poison_weights(),
        check=no_export_written,
    ),
    Case(
        "export/inf weights to torchscript",
        ["export", "{run}", "--format", "torchscript"],
        "the run diverged",
        needs_run=True,
        setup=poison_weights(value=math.inf),
        check=no_export_written,
    ),
    Case(
        "export/opset text",
        ["export", "{run}", "--opset", "latest"],
        "--opset must be a whole number in [",
        needs_run=True,
    ),
    Case(
        "export/opset too old", ["export", "{run}", "--opset", "3"], "got '3'", needs_run=True, check=no_export_written
    ),
    Case(
        "export/opset too new",
        ["export", "{run}", "--opset", "99"],
        "got '99'",
        needs_run=True,
        check=no_export_written,
    ),
    Case("export/opset negative", ["export", "{run}", "--opset=-1"], "got '-1'", needs_run=True),
    Case("export/opset fractional", ["export", "{run}", "--opset", "17.5"], "got '17.5'", needs_run=True),
]

CASES = OPTION_CASES + DIVERGENCE_CASES + EXPORT_CASES
