"""Hardware: achieved training FLOP/s as a fraction of the machine's measured fp32 peak.

    python bench/hardware.py            # LeNet-5 modern, ResNet-20, VGG-11
    python bench/hardware.py --quick

Peak = the best of a large SGEMM and a few large convolution forwards (both memory formats), timed here at the
same thread count as the training. Achieved = forward MACs (cnnlab.summary) x 2 FLOP/MAC x 3 (forward +
backward, whose two halves each cost about a forward) x training images/s, from the hand-written loop
(benchlib.hand_loop: Adam, uint8 batches normalised on the fly) on random data, NCHW and channels_last.
LeNet-5 runs at MNIST's 1x28x28 (what the other scripts train), ResNet-20 and VGG-11 at 3x32x32.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from benchlib import append_results, choose_threads, hand_loop, load_average, markdown_table, median

from cnnlab.models import create
from cnnlab.summary import summarize

MODELS = [  # name, input shape, batch size, training images (full, quick)
    ("lenet5_modern", (1, 28, 28), 256, 8192, 4096),
    ("resnet20", (3, 32, 32), 128, 1024, 384),
    ("vgg11", (3, 32, 32), 64, 256, 128),
]


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocations, oneDNN primitive creation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sgemm_gflops(size: int, repeats: int) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def conv_gflops(batch: int, channels: int, size: int, channels_last: bool, repeats: int) -> float:
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=memory_format)
    w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=memory_format)
    flops = 2 * batch * channels * size * size * channels * 9

    def run() -> None:
        with torch.no_grad():
            F.conv2d(x, w, padding=1)

    return flops / best_seconds(run, repeats) / 1e9


def measure_peak(quick: bool) -> dict[str, float]:
    repeats = 3 if quick else 6
    peaks = {"sgemm 2048": sgemm_gflops(2048, repeats)}
    for batch, channels, size in [(32, 64, 56), (16, 128, 28), (8, 256, 14)]:
        for channels_last in (False, True):
            label = f"conv3x3 {channels}ch {size}px b{batch}{' NHWC' if channels_last else ''}"
            peaks[label] = conv_gflops(batch, channels, size, channels_last, repeats)
    return peaks


def training_rate(name: str, shape, batch: int, images: int, channels_last: bool) -> float:
    """Images/s of the hand loop over `images` random images (first epoch dropped; median of the next two)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (images, *shape), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (images,), generator=generator)
    torch.manual_seed(0)
    model = create(name, num_classes=10, in_channels=shape[0])
    channels = shape[0]
    seconds = hand_loop(model, x, y, [0.5] * channels, [0.25] * channels, batch, 3, channels_last=channels_last)
    return median([images / s for s in seconds[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    load_before = load_average()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    peaks = measure_peak(args.quick)
    peak_label = max(peaks, key=peaks.get)
    peak = peaks[peak_label]
    for label, value in peaks.items():
        print(f"  peak candidate {label}: {value:.1f} GFLOP/s", flush=True)
    rows = []
    for name, shape, batch, full, quick in MODELS:
        macs = summarize(create(name, num_classes=10, in_channels=shape[0]), shape).macs
        for channels_last in (False, True):
            rate = training_rate(name, shape, batch, quick if args.quick else full, channels_last)
            achieved = macs * 2 * 3 * rate / 1e9
            layout = "NHWC" if channels_last else "NCHW"
            rows.append(
                [name, "x".join(map(str, shape)), layout, batch, f"{macs / 1e6:.2f} M", rate, achieved, achieved / peak]
            )
            print(f"  {name} {layout}: {rate:,.0f} img/s, {achieved:.1f} GFLOP/s", flush=True)
    header = ["model", "input", "layout", "batch", "fwd MACs", "train img/s", "achieved GFLOP/s", "fraction of peak"]
    table = markdown_table(header, rows)
    peak_table = markdown_table(["peak candidate (fp32)", "GFLOP/s"], [[k, v] for k, v in peaks.items()])
    print(peak_table)
    print(table)
    if not args.no_record:
        notes = [
            f"peak = {peak:.1f} GFLOP/s ({peak_label}), best of the candidates above, measured in this run.",
            "achieved = fwd MACs x 2 x 3 x images/s of the hand-written training loop (Adam, batch as listed).",
        ]
        append_results(
            "Hardware: achieved FLOP/s vs peak" + (" (quick)" if args.quick else ""),
            threads,
            peak_table + "\n\n" + table,
            notes,
            load_before,
        )
    print(f"peak: {peak:.1f} GFLOP/s ({peak_label})")
    for row in rows:
        print(f"fraction of peak {row[0]} {row[2]}: {row[-1]:.3f}")


if __name__ == "__main__":
    main()
