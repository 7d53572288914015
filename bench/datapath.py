"""Data path: images/s of decoding + augmenting a folder of JPEGs, cnnlab vs torchvision ImageFolder + DataLoader.

    python bench/datapath.py                    # the CIFAR-10 JPEG train folder (50,000 images)
    python bench/datapath.py --quick            # 500 images per class (5,000)
    python bench/datapath.py --folder PATH      # any folder of class sub-folders

cnnlab: `load_dataset(folder)` decodes every file once into one uint8 tensor (threaded, batched JPEG decoding),
then `make_batches(..., augment=crop 4 + flip)` gives augmented uint8 batches by tensor ops. torchvision:
`ImageFolder` with RandomCrop(32, padding=4) + RandomHorizontalFlip + PILToTensor (uint8, the same output) and a
`DataLoader` (batch 256, shuffled), with default settings (no workers) and with 2 workers. The torchvision path
decodes every epoch; cnnlab decodes in the first only, so both the first epoch (decode + augment) and a later
epoch are reported. Ratios are cnnlab's images/s over torchvision's (defaults), runs alternated, best of repeats.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from benchlib import append_results, choose_threads, cifar_folder, load_average, markdown_table, median

from cnnlab.data import build_augmenter, load_dataset, make_batches

BATCH = 256


def subset_folder(source: Path, per_class: int, target: Path) -> Path:
    """`per_class` files of each class folder, as symlinks (both contenders read the same files)."""
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / class_dir.name).mkdir(parents=True)
        for name in sorted(os.listdir(class_dir))[:per_class]:
            (target / class_dir.name / name).symlink_to(class_dir / name)
    return target


def drain(batches) -> int:
    count = 0
    for x, _ in batches:
        count += len(x)
    return count


def cnnlab_epochs(folder: Path, epochs: int) -> list[float]:
    """Images/s: [first epoch including decoding to memory, later epochs from memory]."""
    augment = build_augmenter({"crop": 4, "flip": True})
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    train = load_dataset(folder, val_split=0.0).train
    rates = []
    for _ in range(epochs):
        count = drain(make_batches(train, BATCH, shuffle=True, generator=generator, augment=augment))
        rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
    return rates


def torchvision_epochs(folder: Path, epochs: int, workers: int) -> list[float]:
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    transform = v2.Compose([v2.PILToTensor(), v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        count = drain(loader)
        rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 images per class")
    parser.add_argument("--folder", help="class-folder tree (default: the CIFAR-10 JPEG train folder)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    load_before = load_average()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    if args.folder:
        folder = Path(args.folder)
    else:
        root = cifar_folder()
        if root is None:
            raise SystemExit("no CIFAR-10 JPEG folder found; pass --folder PATH")
        folder = root / "train"
    repeats = args.repeats or (2 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="cnnlab-datapath-") as tmp:
        if args.quick:
            folder = subset_folder(folder, 500, Path(tmp) / "subset")
        results: dict[str, list[list[float]]] = {"cnnlab": [], "tv0": [], "tv2": []}
        for number in range(repeats):
            order = ["cnnlab", "tv0", "tv2"] if number % 2 == 0 else ["tv2", "tv0", "cnnlab"]
            for key in order:
                if key == "cnnlab":
                    results[key].append(cnnlab_epochs(folder, 2))
                else:
                    results[key].append(torchvision_epochs(folder, 1 if args.quick else 2, int(key[2:])))
                print(f"  repeat {number + 1}: {key}: " + ", ".join(f"{r:,.0f}" for r in results[key][-1]), flush=True)
        images = sum(len(files) for _, _, files in os.walk(folder, followlinks=True))

    def best(key: str, epoch: int) -> float:
        return max(run[min(epoch, len(run) - 1)] for run in results[key])

    base = median([best("tv0", 0), best("tv0", 1)])
    rows = [
        ["cnnlab: first epoch (decode to memory + augmented batches)", best("cnnlab", 0), best("cnnlab", 0) / base],
        ["cnnlab: later epoch (augmented batches from memory)", best("cnnlab", 1), best("cnnlab", 1) / base],
        ["torchvision ImageFolder + DataLoader, defaults (0 workers)", base, 1.0],
        ["torchvision ImageFolder + DataLoader, 2 workers", best("tv2", 0), best("tv2", 0) / base],
    ]
    table = markdown_table(["contender", "images/s", "ratio to torchvision defaults"], rows)
    print(table)
    notes = [
        f"{images:,} JPEG images ({folder.name}), batch {BATCH}, crop 4 (pad + random crop) + horizontal flip, "
        f"uint8 out; best of {repeats} alternated repeats; torch threads {threads} "
        "(cnnlab's JPEG decoder pool: 2 threads per core).",
    ]
    if not args.no_record:
        append_results(
            "Data path: decode + augment" + (" (quick)" if args.quick else ""), threads, table, notes, load_before
        )
    print(f"data path ratio (cnnlab first epoch / torchvision defaults): {rows[0][2]:.2f}")


if __name__ == "__main__":
    main()
