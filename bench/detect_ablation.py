"""What each of yolo_grid's departures from YOLOv1 buys, measured on the generated digit scenes.

    python bench/detect_ablation.py              # 6 runs of 6 epochs on 2,000 scenes: ~8 min on 2 idle cores
    python bench/detect_ablation.py --quick      # 2 epochs on 500 scenes: a smoke test (nothing appended)

Every run has the same backbone (the detect_digits example's layer list), data, seed, optimiser and epochs; one
choice changes at a time against the full recipe (k-means anchors, CIoU, YOLOv5's neighbour cells, batch-normed
neck). yolo_v1 (the paper's head and sum-squared loss on the same backbone) is the reference. The table goes to
bench/RESULTS.md with the CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from benchlib import REPO, append_results, choose_threads, load_average, markdown_table, quiet

from cnnlab.data.synthetic import digit_detection_splits
from cnnlab.models.yolo import DEFAULT_ANCHOR_SIZE, DEFAULT_ANCHORS
from cnnlab.train import TrainConfig, fit

EXAMPLE = REPO / "src" / "cnnlab" / "examples" / "detect_digits.yaml"
VOC_ANCHORS = [[w * 128 / DEFAULT_ANCHOR_SIZE, h * 128 / DEFAULT_ANCHOR_SIZE] for w, h in DEFAULT_ANCHORS]

# name -> (model, extra model options, task options)
VARIANTS = {
    "yolo_grid (full recipe)": ("yolo_grid", {}, {}),
    "anchors: YOLOv2's VOC anchors, not k-means": ("yolo_grid", {"anchors": VOC_ANCHORS}, {}),
    "assignment: own cell only": ("yolo_grid", {}, {"neighbours": False}),
    "box loss: GIoU instead of CIoU": ("yolo_grid", {}, {"box_loss": "giou"}),
    "box loss: DIoU instead of CIoU": ("yolo_grid", {}, {"box_loss": "diou"}),
    "yolo_v1 (paper head + loss)": ("yolo_v1", {"grid": 8}, {}),
}


def run(name: str, splits, epochs: int, threads: int, out: Path) -> dict:
    example = yaml.safe_load(EXAMPLE.read_text())
    model, extra, task_options = VARIANTS[name]
    options = dict(example["model_options"])
    if model == "yolo_v1":
        options = {"backbone": options["backbone"], "head_channels": 128, "hidden": 256}
    config = TrainConfig(
        task="detection",
        model=model,
        model_options={**options, **extra},
        task_options=task_options,
        data="digits",
        augment=example["augment"],
        epochs=epochs,
        batch_size=example["batch_size"],
        threads=threads,
        quiet=True,
        out=str(out),
    )
    start = time.perf_counter()
    with quiet():
        result = fit(config, data=splits, overwrite=True)
    test = result.results["test"]
    return {"map50": test["map50"], "map50_95": test["map50_95"], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default=None)
    parser.add_argument("--out", default="/tmp/cnnlab_detect_ablation")
    args = parser.parse_args()
    threads = choose_threads(args.threads)
    load = load_average()
    train, epochs = (500, 2) if args.quick else (2000, 6)
    splits = digit_detection_splits(train=train, val=300, test=1000, seed=0)
    rows, baseline = [], None
    for index, name in enumerate(VARIANTS):
        scores = run(name, splits, epochs, threads, Path(args.out) / str(index))
        baseline = baseline or scores
        rows.append(
            [
                name,
                f"{scores['map50']:.4f}",
                f"{scores['map50_95']:.4f}",
                f"{scores['map50'] - baseline['map50']:+.4f}",
                f"{scores['seconds']:.0f}",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["variant", "test mAP@0.5", "mAP@0.5:0.95", "vs full recipe", "seconds"], rows)
    print(table)
    if not args.quick:
        notes = [f"digit scenes: {train} train, 300 val, 1000 test (MNIST test digits); {epochs} epochs each, seed 0"]
        append_results("Detection: what each yolo_grid choice buys (digit scenes)", threads, table, notes, load)


if __name__ == "__main__":
    main()
