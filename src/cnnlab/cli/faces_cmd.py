"""`cnnlab faces train|evaluate|enroll|identify|verify|list|remove`: face recognition end to end."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError

TRAIN_EPILOG = (
    "examples:\n"
    "  cnnlab faces train --config faces_olivetti --data att_faces --out runs/faces   # cropped faces (Olivetti)\n"
    "  cnnlab faces train --data PHOTOS --backbone resnet18 --loss triplet --out runs/F\n"
    "then, in the order a user runs them:\n"
    "  cnnlab faces evaluate runs/faces\n"
    "  cnnlab faces enroll --run runs/faces --gallery g.db --name alice alice1.jpg alice2.jpg\n"
    "  cnnlab faces identify --run runs/faces --gallery g.db photo.jpg\n"
    "  cnnlab faces verify --run runs/faces a.jpg b.jpg"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import CommandParser

    commands = parser.add_subparsers(dest="faces_command", metavar="COMMAND", parser_class=CommandParser)
    train = commands.add_parser(
        "train",
        help="train a face embedder on a folder of people (one sub-folder per person)",
        description="train a face embedder; every `cnnlab train` flag applies",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_arguments(train)

    evaluate = commands.add_parser("evaluate", help="verification ROC/EER, identification, open set on unseen people")
    evaluate.add_argument("run", help="run folder written by `cnnlab faces train`")
    evaluate.add_argument("--data", metavar="FOLDER", help="people to evaluate on (default: the run's test people)")
    evaluate.add_argument("--split", default="test", choices=["val", "test"], help="the run's own people to use")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_detect_flag(evaluate)

    enroll = commands.add_parser("enroll", help="add a person's faces to a gallery (SQLite file)")
    _add_run_and_gallery(enroll)
    enroll.add_argument("--name", required=True, help="the person's name")
    enroll.add_argument("images", nargs="+", metavar="IMG|DIR", help="images of the person, or folders of them")

    identify = commands.add_parser("identify", help="who is this? the best matches in a gallery, or unknown")
    _add_run_and_gallery(identify)
    identify.add_argument("images", nargs="+", metavar="IMG", help="face images to identify")
    identify.add_argument("--top", type=int, default=5, metavar="K", help="matches to list (default 5)")
    identify.add_argument("--threshold", type=float, help="cosine score below which a face is unknown")
    identify.add_argument(
        "--index", choices=["exact", "faiss", "faiss-ivf"], default="exact", help="search (faiss needs faiss-cpu)"
    )
    identify.add_argument("--json", action="store_true", help="print the matches as JSON")

    verify = commands.add_parser("verify", help="are two faces the same person?")
    verify.add_argument("--run", required=True, help="run folder written by `cnnlab faces train`")
    verify.add_argument("images", nargs=2, metavar="IMG", help="two face images")
    verify.add_argument("--threshold", type=float, help="cosine score from which they are one person")
    verify.add_argument("--json", action="store_true", help="print the answer as JSON")
    _add_detect_flag(verify)

    listing = commands.add_parser("list", help="the people in a gallery and their image counts")
    listing.add_argument("--gallery", required=True, help="gallery file (SQLite)")
    listing.add_argument("--json", action="store_true")
    remove = commands.add_parser("remove", help="remove a person from a gallery")
    remove.add_argument("--gallery", required=True, help="gallery file (SQLite)")
    remove.add_argument("--name", required=True, help="the person to remove")
    parser.set_defaults(faces_parsers=commands.choices)


def _add_detect_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-detect", action="store_true", help="take the images as face crops (no face detection)")


def _add_run_and_gallery(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder written by `cnnlab faces train`")
    parser.add_argument("--gallery", required=True, help="gallery file (SQLite; created on first enroll)")
    _add_detect_flag(parser)


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import train_cmd

    train_cmd.add_arguments(parser)
    group = parser.add_argument_group("faces")
    group.add_argument("--backbone", help="zoo model (resnet18, ...) or a layer-list YAML file (default resnet18)")
    group.add_argument("--backbone-weights", metavar="FILE", help="state dict to start the backbone from")
    group.add_argument("--embedding-dim", metavar="D", help="embedding size (default 128)")
    group.add_argument("--loss", choices=["arcface", "triplet"], help="training loss (default arcface)")
    group.add_argument("--image-size", metavar="S", help="square face crop side (default 112)")
    group.add_argument("--no-detect", action="store_true", help="the images are face crops already (no detection)")
    group.add_argument("--test-people", metavar="N", help="people held out for test: a count or a fraction (0.25)")
    group.add_argument("--val-people", metavar="N", help="people held out for validation (0.125)")
    group.add_argument(
        "--skip-invalid", action="store_true", help="skip unreadable images and images without a face (skipped.txt)"
    )


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "faces_command", None)
    if command is None:
        from cnnlab.cli import UsageError

        raise UsageError("faces needs a command: train, evaluate, enroll, identify, verify, list or remove")
    handlers = {
        "train": _train,
        "evaluate": _evaluate,
        "enroll": _enroll,
        "identify": _identify,
        "verify": _verify,
        "list": _list,
        "remove": _remove,
    }
    return handlers[command](args)


# -- train --------------------------------------------------------------------------------------------------------
def _number(text: str | None, flag: str, kind: type) -> Any:
    from cnnlab.cli.detect_cmd import _number as number

    return number(text, flag, kind)


def faces_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The faces flags as TrainConfig overrides: task, model options and task options."""
    extra: dict[str, Any] = {"task": "faces"}
    model_options = {
        key: value
        for key, value in (
            ("backbone", args.backbone),
            ("backbone_weights", args.backbone_weights),
            ("embedding_dim", _number(args.embedding_dim, "--embedding-dim", int)),
        )
        if value is not None
    }
    task_options = {
        key: value
        for key, value in (
            ("image_size", _number(args.image_size, "--image-size", int)),
            ("test_people", _number(args.test_people, "--test-people", float)),
            ("val_people", _number(args.val_people, "--val-people", float)),
            ("loss", args.loss),
            ("detect", False if args.no_detect else None),
            ("skip_invalid", True if args.skip_invalid else None),
        )
        if value is not None
    }
    if model_options:
        extra["model_options"] = model_options
    if task_options:
        extra["task_options"] = task_options
    from cnnlab.cli.detect_cmd import _config_names_model

    if not args.resume and getattr(args, "model", None) is None and not _config_names_model(args.config):
        extra["model"] = "face_embedder"
    return extra


def _train(args: argparse.Namespace) -> int:
    from cnnlab.cli import train_cmd

    return train_cmd.run_training(args, faces_overrides(args))


# -- evaluate -----------------------------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.faces import evaluate_face_run
    from cnnlab.io import atomic_write_bytes, atomic_write_json
    from cnnlab.viz.faces import roc_png

    scored, face_run = evaluate_face_run(args.run, args.data, args.split, False if args.no_detect else None)
    report, evaluation = scored.report, scored.evaluation
    name = "faces_eval" if args.data else f"faces_{args.split}"
    written = [
        atomic_write_json(face_run.run_dir / f"{name}.json", report),
        atomic_write_bytes(face_run.run_dir / f"{name}_roc.png", roc_png(evaluation.verification)),
    ]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from cnnlab.tasks.faces.evaluation import format_face_report

    print(format_face_report(report))
    print(f"written: {', '.join(str(p) for p in written)}")
    print(f"{args.split if not args.data else 'test'} verification EER: {report['verification']['eer']:.4f}")
    return 0


# -- gallery commands ---------------------------------------------------------------------------------------------
def _image_files(items: list[str]) -> list[Path]:
    from cnnlab.cli.detect_cmd import image_files

    return image_files(items)


def _open_gallery(path: str, face_run, create: bool, index: str = "exact"):
    from cnnlab.tasks.faces.gallery import Gallery

    return Gallery(path, model_id=face_run.fingerprint, dim=face_run.dim, create=create, index=index)


def _enroll(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.faces import load_face_run

    if not args.name.strip():
        raise ConfigError("--name must not be empty")
    face_run = load_face_run(args.run, False if args.no_detect else None)
    embeddings, kept, _ = face_run.embed_files(_image_files(args.images))
    with _open_gallery(args.gallery, face_run, create=True) as gallery:
        gallery.enroll(args.name, embeddings, kept)
        count = dict(gallery.people()).get(args.name, len(kept))
    print(f"enrolled {len(kept)} image{'s' * (len(kept) != 1)} of {args.name} ({count} in {args.gallery})")
    return 0


def _identify(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.faces import load_face_run

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    face_run = load_face_run(args.run, False if args.no_detect else None)
    threshold = args.threshold if args.threshold is not None else face_run.require_threshold()
    files = _image_files(args.images)
    embeddings, kept, _ = face_run.embed_files(files)
    with _open_gallery(args.gallery, face_run, create=False, index=args.index) as gallery:
        if len(gallery) == 0:
            raise ConfigError(f"{args.gallery}: the gallery is empty; enroll people first (cnnlab faces enroll)")
        found = gallery.identify(embeddings, top_k=args.top)
    answers = [_identity(path, matches, threshold) for path, matches in zip(kept, found)]
    if args.json:
        print(json.dumps(answers[0] if len(answers) == 1 else answers, indent=2))
        return 0
    for answer in answers:
        print(f"{answer['file']}: {answer['identity']}")
        for rank, match in enumerate(answer["matches"], 1):
            mark = "" if match["score"] >= threshold else "  (below threshold)"
            print(f"  {rank}. {match['name']:<24} {match['score']:.4f}{mark}")
    print(f"threshold: {threshold:.4f} ({'given' if args.threshold is not None else face_run.rule or 'run'})")
    return 0


def _identity(path: str, matches: list, threshold: float) -> dict[str, Any]:
    rows = [{"name": name, "score": round(float(score), 4)} for name, score in matches]
    best = rows[0] if rows else None
    known = best is not None and best["score"] >= threshold
    return {
        "file": str(path),
        "identity": best["name"] if known else "unknown",
        "matches": rows,
        "threshold": round(float(threshold), 4),
    }


def _verify(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.faces import load_face_run

    face_run = load_face_run(args.run, False if args.no_detect else None)
    threshold = args.threshold if args.threshold is not None else face_run.require_threshold()
    embeddings, kept, _ = face_run.embed_files(_image_files(args.images))
    score = float(embeddings[0] @ embeddings[1])
    same = score >= threshold
    answer = {
        "same": same,
        "score": round(score, 4),
        "threshold": round(float(threshold), 4),
        "files": kept,
    }
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    relation = ">=" if same else "<"
    verdict = "same person" if same else "different people"
    print(f"{verdict} (cosine {score:.4f} {relation} threshold {threshold:.4f})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnnlab.tasks.faces.gallery import Gallery

    with Gallery.open(args.gallery) as gallery:
        people = gallery.people()
    if args.json:
        print(json.dumps([{"name": n, "images": c} for n, c in people], indent=2))
        return 0
    if not people:
        print(f"{args.gallery}: no one enrolled", file=sys.stderr)
        return 0
    width = max(len(n) for n, _ in [*people, ("name", 0)])
    print(f"{'name':<{width}}  images")
    for name, count in people:
        print(f"{name:<{width}}  {count:6d}")
    print(f"{len(people)} people, {sum(c for _, c in people)} images")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from cnnlab.tasks.faces.gallery import Gallery

    with Gallery.open(args.gallery) as gallery:
        removed = gallery.remove(args.name)
    print(f"removed {args.name} ({removed} image{'s' * (removed != 1)}) from {args.gallery}")
    return 0
