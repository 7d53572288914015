"""`cnnlab text train|evaluate|predict`: sentence classification with Kim's CNN, end to end."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cnnlab.errors import ConfigError

# Kim 2014's training recipe (§3.1, and his code): Adadelta (rho 0.95, eps 1e-6) at learning rate 1, mini-batches of
# 50, 25 epochs, the best epoch on a 10% dev split kept; dropout 0.5 and max-norm 3 live in the model. Applied under
# a config file's and the command line's own values.
KIM_RECIPE: dict[str, Any] = {
    "task": "text",
    "model": "kim_cnn",
    "epochs": 25,
    "batch_size": 50,
    "optimizer": {"name": "adadelta", "lr": 1.0, "rho": 0.95, "eps": 1e-6},
    "schedule": {"name": "none"},
    "val_split": 0.1,
}

TRAIN_EPILOG = (
    "examples:\n"
    "  cnnlab text train --data rt-polarity/ --encoding latin-1 --variant rand --cv 10 --out runs/mr\n"
    "  cnnlab text train --data trec/ --coarse-labels --keep-case --encoding latin-1 --variant non-static "
    "--vectors glove-6b-50d --out runs/trec\n"
    "  cnnlab text train --data reviews.csv --text-column review --label-column stars --out runs/reviews\n"
    "then:\n"
    '  cnnlab text predict runs/trec "How far is it from Denver to Aspen ?"\n'
    "  cnnlab text evaluate runs/trec\n"
    "  cnnlab report runs/trec"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import CommandParser

    commands = parser.add_subparsers(dest="text_command", metavar="COMMAND", parser_class=CommandParser)
    train = commands.add_parser(
        "train",
        help="train a sentence classifier (Kim 2014's CNN) on a text data set",
        description="train a sentence classifier with Kim's recipe; every `cnnlab train` flag applies",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_arguments(train)

    evaluate = commands.add_parser("evaluate", help="accuracy, macro-F1 and the confusion matrix of a text run")
    evaluate.add_argument("run", help="run folder written by `cnnlab text train`")
    evaluate.add_argument("--data", metavar="PATH", help="sentences to evaluate on (default: the run's own split)")
    evaluate.add_argument("--split", default="test", choices=["val", "test"], help="the run's own split to use")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")

    predict = commands.add_parser("predict", help="the label and its probability for sentences")
    predict.add_argument("run", help="run folder written by `cnnlab text train`")
    predict.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to classify")
    predict.add_argument("--file", metavar="FILE", help="also classify every line of this UTF-8 file")
    predict.add_argument("--top", type=int, default=1, metavar="K", help="labels to show per sentence (default 1)")
    predict.add_argument("--json", action="store_true", help="print the predictions as JSON")
    predict.set_defaults(positional_extras="sentences")
    parser.set_defaults(text_parsers=commands.choices)


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import train_cmd

    train_cmd.add_arguments(parser)
    group = parser.add_argument_group("text")
    group.add_argument(
        "--variant",
        choices=["rand", "static", "non-static", "multichannel"],
        help="Kim's variants: vectors learned from scratch (rand, default), or started from --vectors and kept "
        "(static), tuned (non-static), or both as two channels (multichannel)",
    )
    group.add_argument(
        "--vectors", metavar="FILE", help="word vectors: word2vec .bin, GloVe/fastText text, or glove-6b-50d"
    )
    group.add_argument("--cv", metavar="K", help="K-fold stratified cross-validation (for data without a test split)")
    group.add_argument("--embedding-dim", metavar="D", help="word-vector size for rand (default 300, as Kim)")
    group.add_argument(
        "--tokenizer", choices=["kim", "whitespace", "chars"], help="kim: Kim's clean_str rules (default)"
    )
    group.add_argument("--keep-case", action="store_true", help="do not lower-case (Kim keeps TREC's case)")
    group.add_argument("--min-freq", metavar="N", help="words seen fewer times in training become <unk> (default 1)")
    group.add_argument("--max-length", metavar="N", help="pad or cut sentences to N tokens (default: the longest)")
    group.add_argument("--encoding", metavar="NAME", help="the files' text encoding (default utf-8; MR is latin-1)")
    group.add_argument("--text-column", metavar="NAME", help="CSV/TSV: the column with the text")
    group.add_argument("--label-column", metavar="NAME", help="CSV/TSV: the column with the label")
    group.add_argument("--coarse-labels", action="store_true", help="labels COARSE:fine are cut to COARSE (TREC's 6)")
    group.add_argument("--test-fraction", metavar="F", help="test part held out when the data has none (0.1)")


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "text_command", None)
    if command is None:
        from cnnlab.cli import UsageError

        raise UsageError("text needs a command: train, evaluate or predict")
    return {"train": _train, "evaluate": _evaluate, "predict": _predict}[command](args)


# -- train --------------------------------------------------------------------------------------------------------
def _number(text: str | None, flag: str, kind: type) -> Any:
    from cnnlab.cli.detect_cmd import _number as number

    return number(text, flag, kind)


def text_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The text flags as TrainConfig overrides (task options and model options)."""
    task_options = {
        key: value
        for key, value in (
            ("vectors", args.vectors),
            ("tokenizer", args.tokenizer),
            ("lower", False if args.keep_case else None),
            ("min_freq", _number(args.min_freq, "--min-freq", int)),
            ("max_length", _number(args.max_length, "--max-length", int)),
            ("encoding", args.encoding),
            ("text_column", args.text_column),
            ("label_column", args.label_column),
            ("coarse_labels", True if args.coarse_labels else None),
            ("test_fraction", _number(args.test_fraction, "--test-fraction", float)),
        )
        if value is not None
    }
    model_options = {
        key: value
        for key, value in (
            ("variant", args.variant),
            ("embedding_dim", _number(args.embedding_dim, "--embedding-dim", int)),
        )
        if value is not None
    }
    extra: dict[str, Any] = {"task": "text"}
    if task_options:
        extra["task_options"] = task_options
    if model_options:
        extra["model_options"] = model_options
    return extra


def _dotted(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in tree.items():
        name = prefix + str(key).replace("-", "_")
        keys |= _dotted(value, name + ".") if isinstance(value, dict) and key != "model_options" else {name}
    return keys


def _recipe_under(given: dict[str, Any]) -> dict[str, Any]:
    """Kim's recipe without the keys a config file or a flag sets (those win)."""
    taken = _dotted(given)
    recipe: dict[str, Any] = {}
    for key, value in KIM_RECIPE.items():
        if isinstance(value, dict):
            kept = {k: v for k, v in value.items() if f"{key}.{k}" not in taken and key not in taken}
            if kept:
                recipe[key] = kept
        elif key not in taken:
            recipe[key] = value
    if "model" in taken or "layers" in taken:
        recipe.pop("model", None)
    return recipe


def build_text_config(args: argparse.Namespace):
    from cnnlab.cli.train_cmd import _parsed_mappings
    from cnnlab.config import deep_merge, load_config, overrides_from_args, read_yaml
    from cnnlab.examples import find_config
    from cnnlab.train import TrainConfig, resume_config

    extra = text_overrides(args)
    flags = _parsed_mappings(overrides_from_args(args, TrainConfig), extra)
    if args.resume:
        return resume_config(args.resume, deep_merge(flags, extra))
    path = find_config(args.config) if args.config else None
    given = deep_merge(read_yaml(path) if path else {}, flags)
    overrides = deep_merge(deep_merge(_recipe_under(given), flags), extra)
    return load_config(TrainConfig, path, overrides)


def _folds(text: str | None) -> int | None:
    folds = _number(text, "--cv", int)
    if folds is not None and folds < 2:
        raise ConfigError(f"--cv must be a whole number >= 2, got {text!r}")
    return folds


def _train(args: argparse.Namespace) -> int:
    from cnnlab.train import fit
    from cnnlab.train.callbacks.progress import ResumeHint

    if args.nproc not in (None, "1"):
        from cnnlab.cli import train_cmd

        if _folds(args.cv):
            raise ConfigError("--cv runs its folds one after another on one process; drop --nproc")
        return train_cmd.run_training(args, text_overrides(args))
    folds = _folds(args.cv)
    config = build_text_config(args)
    hint = ResumeHint()
    try:
        if folds:
            return _cross_validate(config, folds, args.overwrite)
        result = fit(config, resume=args.resume, overwrite=args.overwrite, callbacks=[hint])
    except KeyboardInterrupt:
        if hint.message() is None:
            raise
        print(f"cnnlab: {hint.message()}", file=sys.stderr)
        return 130
    scores = result.results["test"] if "test" in result.results else result.results[result.results["evaluated_split"]]
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch: {result.results['best_epoch']} of {result.results['epochs_run']}  "
        f"train time: {result.results['train_seconds']:.1f}s"
    )
    print(f"test macro-F1: {scores['macro_f1']:.4f}")
    print(f"test accuracy: {scores['accuracy']:.4f}")
    return 0


def _cross_validate(config, folds: int, overwrite: bool) -> int:
    from cnnlab.train.cv import cross_validate

    if not config.quiet:
        print(f"{folds}-fold cross-validation: one run per fold in {config.out or 'runs/' + config.model}/fold-NN")
    result = cross_validate(config, folds, overwrite=overwrite)
    accuracy = result.results["cv"]["accuracy"]
    per_fold = "  ".join(f"{value:.4f}" for value in accuracy["per_fold"])
    print(f"folder: {result.out}")
    print(f"fold accuracies: {per_fold}")
    print(f"train time: {result.results['train_seconds']:.1f}s over {folds} folds")
    print(f"test accuracy std over folds: {accuracy['std']:.4f}")
    print(f"test accuracy: {accuracy['mean']:.4f}")
    return 0


# -- evaluate -----------------------------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.text import evaluate_text_run, format_text_report

    report, written = evaluate_text_run(args.run, args.data, args.split)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("\n".join(format_text_report(report)))
    print(f"written: {written}")
    print(f"{report['split']} accuracy: {report['accuracy']:.4f}")
    return 0


# -- predict ------------------------------------------------------------------------------------------------------
def _sentences(args: argparse.Namespace) -> list[str]:
    from cnnlab.evaluate.text import read_sentence_file

    sentences = list(args.sentences)
    if args.file:
        sentences += read_sentence_file(args.file)
    if not sentences:
        raise ConfigError("text predict needs sentences: give them as arguments or with --file FILE")
    empty = next((i for i, s in enumerate(sentences, 1) if not s.strip()), None)
    if empty is not None:
        raise ConfigError(f"sentence {empty} is empty")
    return sentences


def _predict(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.text import predict_sentences

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    sentences = _sentences(args)
    predictions = predict_sentences(args.run, sentences, args.top)
    if args.json:
        print(json.dumps(predictions, indent=2))
        return 0
    for item in predictions:
        labels = "  ".join(f"{p['label']} {p['probability']:.4f}" for p in item["top"])
        print(f"{labels}  {item['sentence']}")
    return 0
