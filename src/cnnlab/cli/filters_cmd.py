"""`cnnlab filters RUN [--out F.png]`: the learned first-layer filters as an image grid."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--out", help="PNG to write (default: RUN/filters.png)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])


def run(args: argparse.Namespace) -> int:
    from cnnlab.runs import check_output_file, load_run, writing
    from cnnlab.viz.filters import filter_grid, first_conv_weight
    from cnnlab.viz.images import save_png

    if args.out:
        check_output_file(args.out)
    loaded = load_run(args.run, args.checkpoint)
    target = check_output_file(Path(args.out) if args.out else loaded.run_dir / "filters.png")
    weight = first_conv_weight(loaded.model, loaded.input_shape)
    with writing(target):
        path = save_png(filter_grid(weight), target)
    out_channels, in_channels, height, width = weight.shape
    print(f"{out_channels} filters of {in_channels}x{height}x{width}: {path}")
    return 0
