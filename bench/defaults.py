"""Which optimiser, schedule, learning rate and epoch count should `cnnlab train` use when given only a model and
data? Each candidate recipe trains the data set's default model on digits, photos and X-rays, small and large,
with the same budget; the table of test accuracies (and the mean over data sets) picks the default.

    python bench/defaults.py                      # 2.7 min of CPU (11 min wall on a loaded 2-core machine)
    python bench/defaults.py --epoch-sweep 3,6,10  # the chosen recipe at each epoch count (28x28 sets)
    python bench/defaults.py --quick              # quarter-size subsets, a smoke test (nothing appended)

Both measurements append their table to bench/RESULTS.md.

Every recipe changes only the optimiser, its learning rate and the schedule (weight decay 0, batch 128, no
augmentation, seed 0: cnnlab's other defaults), so the winner can become the defaults unchanged.
"""

from __future__ import annotations

import argparse
import re
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchlib import CIFAR_ARCHIVE, MNIST, REPO, append_results, choose_threads, load_average, markdown_table, quiet

from cnnlab.train.config import OptimizerConfig, ScheduleConfig, TrainConfig
from cnnlab.train.fit import fit, load_data

PNEUMONIA = REPO.parent / "shared" / "data" / "medical" / "pneumoniamnist.npz"
SCRATCH = Path("/tmp/cnnlab-bench-defaults")


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: OptimizerConfig
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig("none"))  # constant


RECIPES = [
    Recipe("sgd 0.01 constant (old default)", OptimizerConfig("sgd", 0.01)),
    Recipe("adam 1e-3 constant (Keras)", OptimizerConfig("adam", 1e-3)),
    # fastai's fit_one_cycle: lr 3e-3 (its default lr_max is 1e-3; 3e-3 is the rate its course recommends for
    # Adam from scratch), pct_start 0.25, momentum (beta1) cycled 0.95 -> 0.85 -> 0.95 by OneCycleLR.
    Recipe("adamw 3e-3 one-cycle (fastai)", OptimizerConfig("adamw", 3e-3), ScheduleConfig("onecycle")),
    Recipe("sgd 0.1 m0.9 one-cycle", OptimizerConfig("sgd", 0.1), ScheduleConfig("onecycle")),
    Recipe("adamw auto one-cycle (lr-find)", OptimizerConfig("adamw", "auto"), ScheduleConfig("onecycle")),
]


@dataclass(frozen=True)
class DataSet:
    name: str
    kind: str
    config: dict[str, Any]


def cifar_subset(train_per_class: int, test_per_class: int) -> Path:
    """A class-balanced subset of the CIFAR-10 JPEG archive, extracted once into /tmp (file names 0000.jpg...)."""
    target = SCRATCH / f"cifar_{train_per_class}_{test_per_class}"
    if (target / "test").is_dir():
        return target
    limit = {"train": train_per_class, "test": test_per_class}
    with tarfile.open(CIFAR_ARCHIVE) as archive:
        for member in archive:
            match = re.fullmatch(r"CIFAR-10-images/(train|test)/(\w+)/(\d+)\.jpg", member.name)
            if match and int(match.group(3)) < limit[match.group(1)]:
                path = target / match.group(1) / match.group(2) / f"{match.group(3)}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.extractfile(member).read())
    return target


def data_sets(quick: bool) -> list[DataSet]:
    scale = 4 if quick else 1
    cifar = cifar_subset(150 // scale, 50 // scale)
    digits = {"model": "lenet5_modern", "data": str(MNIST)}
    return [
        DataSet("digits small", f"MNIST, {500 // scale} train images", {**digits, "train_samples": 500 // scale}),
        DataSet("digits", f"MNIST, {4000 // scale} train images", {**digits, "train_samples": 4000 // scale}),
        DataSet(
            "X-rays",
            "PneumoniaMNIST (28x28 grey, 2 classes), all 3,882 train images",
            {"model": "lenet5_modern", "data": str(PNEUMONIA), **({"train_samples": 1000} if quick else {})},
        ),
        DataSet(
            "photos",
            f"CIFAR-10 JPEG, {1500 // scale} train / {500 // scale} test images",
            {"model": "resnet20", "data": str(cifar / "train"), "test_data": str(cifar / "test")},
        ),
    ]


def train_once(base: TrainConfig, data: Any, recipe: Recipe) -> tuple[float, float, float]:
    """(test accuracy, the learning rate used, seconds) of one recipe on one data set."""
    config = replace(base, optimizer=recipe.optimizer, schedule=recipe.schedule)
    start = time.perf_counter()
    with quiet():
        result = fit(config, overwrite=True, data=data)
    from cnnlab.config import load_config

    used = load_config(TrainConfig, result.run_dir / "config.yaml").optimizer.lr
    split = result.results["evaluated_split"]
    return result.results[split]["accuracy"], used, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quarter-size subsets; nothing is appended")
    parser.add_argument("--epochs", type=int, default=3, help="the budget: epochs for every recipe (default 3)")
    parser.add_argument("--threads", default="1", help="torch threads (default 1: the machine is shared)")
    parser.add_argument(
        "--epoch-sweep", metavar="N,N,...", help="instead: train RECIPE_FOR_EPOCHS for each epoch count (28x28 sets)"
    )
    args = parser.parse_args()
    threads, load_before = choose_threads(args.threads), load_average()
    sets = data_sets(args.quick)
    if args.epoch_sweep:
        counts = [int(n) for n in args.epoch_sweep.split(",")]
        return epoch_sweep([s for s in sets if s.config["model"] != "resnet20"], counts, threads, args.quick)
    accuracy: dict[tuple[str, str], float] = {}
    rates: dict[tuple[str, str], float] = {}
    seconds = 0.0
    for data_set in sets:
        base = TrainConfig(
            **data_set.config, epochs=args.epochs, threads=threads, progress=False, quiet=True, out=str(SCRATCH / "run")
        )
        data = load_data(base)
        for recipe in RECIPES:
            if recipe.optimizer.lr == "auto" and data_set.config["model"] == "resnet20":
                continue  # lr-find's 100 steps of batch 128 cost more than the training itself: over the budget
            score, lr, took = train_once(base, data, recipe)
            accuracy[data_set.name, recipe.name], rates[data_set.name, recipe.name] = score, lr
            seconds += took
            print(f"{data_set.name:>12}  {recipe.name:<34} test accuracy {score:.4f}  lr {lr:.3g}  {took:5.1f} s")
    table, winner = summary(sets, accuracy, rates)
    print()
    print(table)
    print(f"\nchosen default: {winner}")
    if not args.quick:
        notes = [
            f"budget: {args.epochs} epochs for every recipe, batch 128, weight decay 0, no augmentation, seed 0 "
            f"(one run per cell); {seconds / 60:.1f} min of training in all",
            *(f"{s.name}: {s.kind}, {s.config['model']}" for s in sets),
            "accuracy on each data set's test split (MNIST t10k, PneumoniaMNIST test, the CIFAR-10 test subset); "
            "for `auto` the rate lr-find chose is given in brackets; it was not run on photos (lr-find's 100 "
            "steps of batch 128 on ResNet-20 cost more than the 3 epochs of training)",
            f"chosen default: {winner} (the best mean test accuracy over the data sets)",
        ]
        append_results("Default recipe by measurement", threads, table, notes, load_before)


# The recipe the first table chose; the sweep asks how many epochs it needs.
RECIPE_FOR_EPOCHS = "adamw 3e-3 one-cycle (fastai)"
NEAR_BEST = 0.005  # the default epoch count: the fewest whose mean accuracy is within half a point of the best


def epoch_sweep(sets: list[DataSet], counts: list[int], threads: int, quick: bool) -> None:
    """The chosen recipe at each epoch count (one-cycle stretches over the whole run), per data set."""
    recipe = next(r for r in RECIPES if r.name == RECIPE_FOR_EPOCHS)
    load_before, seconds, rows, means = load_average(), 0.0, [], {}
    datas = {}
    for count in counts:
        scores = []
        for data_set in sets:
            base = TrainConfig(
                **data_set.config, epochs=count, threads=threads, progress=False, quiet=True, out=str(SCRATCH / "run")
            )
            data = datas.setdefault(data_set.name, load_data(base))
            score, _, took = train_once(base, data, recipe)
            scores.append(score)
            seconds += took
            print(f"{data_set.name:>12}  {count:>3} epochs  test accuracy {score:.4f}  {took:5.1f} s")
        means[count] = sum(scores) / len(scores)
        rows.append([count, *(f"{x:.4f}" for x in scores), f"{means[count]:.4f}"])
    best = max(means.values())
    chosen = min(count for count in counts if means[count] >= best - NEAR_BEST)
    table = markdown_table(["epochs", *(s.name for s in sets), "mean"], rows)
    print(f"\n{table}\n\nchosen default: {chosen} epochs")
    if not quick:
        notes = [
            f"recipe: {recipe.name}, batch 128, weight decay 0, seed 0, one run per cell; {seconds / 60:.1f} min "
            "of training in all; photos left out (ResNet-20 for 10 epochs is over this machine's budget)",
            *(f"{s.name}: {s.kind}, {s.config['model']}" for s in sets),
            f"chosen default: {chosen} epochs (the fewest within {100 * NEAR_BEST:g} points of the best mean)",
        ]
        append_results("Default epoch count by measurement", threads, table, notes, load_before)


def summary(sets: list[DataSet], accuracy: dict, rates: dict) -> tuple[str, str]:
    """The table (a row per recipe, a column per data set, then the mean) and the recipe with the best mean."""
    rows, means = [], {}
    for recipe in RECIPES:
        cells = []
        for data_set in sets:
            key = data_set.name, recipe.name
            cell = f"{accuracy[key]:.4f}" if key in accuracy else "not run"
            if key in accuracy and recipe.optimizer.lr == "auto":
                cell += f" (lr {rates[key]:.2g})"
            cells.append(cell)
        scores = [accuracy[s.name, recipe.name] for s in sets if (s.name, recipe.name) in accuracy]
        if len(scores) == len(sets):  # only a recipe measured everywhere can be the default
            means[recipe.name] = sum(scores) / len(scores)
        rows.append([recipe.name, *cells, f"{means[recipe.name]:.4f}" if recipe.name in means else "—"])
    table = markdown_table(["recipe", *(s.name for s in sets), "mean"], rows)
    return table, max(means, key=means.get)


if __name__ == "__main__":
    main()
