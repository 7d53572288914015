"""`cnnlab explain RUN IMG [--class NAME] [--layer NAME] [--out DIR]`: Grad-CAM and feature-map PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("image", help="image file (converted to the run's channels and size)")
    parser.add_argument("--class", dest="class_name", metavar="NAME", help="class to explain (default: predicted)")
    parser.add_argument(
        "--layer", help="Grad-CAM target module, e.g. features.3 (default: the last spatial conv, rectified)"
    )
    parser.add_argument("--out", help="output folder (default: RUN/explain)")
    parser.add_argument("--channels", type=int, default=16, help="feature maps shown per stage")


def run(args: argparse.Namespace) -> int:
    from cnnlab.runs import check_output_folder, load_run
    from cnnlab.viz.explain import explain_image

    if args.out:
        check_output_folder(args.out)
    loaded = load_run(args.run)
    out = check_output_folder(Path(args.out) if args.out else loaded.run_dir / "explain")
    result = explain_image(loaded, args.image, args.class_name, out, args.layer, args.channels)
    print(f"prediction: {result.predicted} ({result.probability:.1%})")
    print(f"grad-cam: {result.gradcam_path}  (class {result.explained_class}, layer {result.layer})")
    for label, path in zip(result.feature_labels, result.feature_paths):
        print(f"features: {path}  ({label})")
    return 0
