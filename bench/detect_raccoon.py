"""Raccoon: cnnlab's grid detector beside Ultralytics YOLOv8n, from scratch, same split, size, batch and CPU time.

    pip install --no-deps ultralytics ultralytics-thop -c constraints/ci.txt   # keeps torch/torchvision/numpy
    pip install "opencv-python-headless<5" polars psutil -c constraints/ci.txt  # what it imports and lacks here
    python bench/detect_raccoon.py --minutes 25              # both contenders, 25 minutes of training each
    python bench/detect_raccoon.py --minutes 25 --only cnnlab --epochs 60 \\
        --cnnlab-args "--augment flip=true,scale=0.3,translate=0.1,jitter=0.3,mosaic=0.5"
    python bench/detect_raccoon.py --minutes 2 --only ultralytics          # a smoke run

Data: ../shared/data/detection/raccoon (200 photos, Pascal VOC XML, one class). The image names, sorted, are
permuted by torch.randperm with a seeded generator: the first 160 train, the last 40 test. Both contenders read
the same files, written under --work: a YOLO-txt folder with data.yaml for Ultralytics (labels converted from
the XML with VOC's 1-based corners made 0-based, as cnnlab's reader does), and two VOC folders (train/, test/)
for cnnlab. Image size 320, batch 16, 2 torch threads, on the CPU, no pretrained weights, each in its own
subprocess (a fresh interpreter: OMP_NUM_THREADS is read at import).

Ultralytics: YOLO('yolov8n.yaml').train(time=minutes/60, epochs=1000, pretrained=False, amp=False, plots=False,
workers=0, seed=0): `time` stops it at the budget and rescales its schedule to fit; it validates on the 40 every
epoch and keeps the best of them (so its best.pt is chosen on the test images, in its favour). Its figures are
then YOLO(best.pt).val(split='val'). Left alone it trains on 1 thread on this machine (select_device sets
torch.set_num_threads(min(8, cpus - 1))), so the worker raises that constant to the thread count. It needs no
network with YOLO_OFFLINE=1 and a font in its config folder (check_det_dataset asks for Arial.ttf, plots or
not, and would otherwise send a HEAD request to its assets host): the worker points YOLO_CONFIG_DIR into --work,
copies matplotlib's DejaVuSans there as Arial.ttf, and refuses (and counts) every internet connection.

cnnlab: `cnnlab detect train --model yolo_grid --backbone resnet18` on the train folder (its own 10% validation
split from the 160 picks the best epoch) with the test folder as --test-data; figures from results.json. cnnlab
has no time budget, so --epochs N is given, or found by a one-epoch probe run (not counted):
epochs = minutes * 60 / probe seconds. Its training seconds are printed beside the budget.

Both are also scored by one evaluator: Ultralytics' best.pt predictions on the 40 test images (conf 0.001, IoU
0.7, 100 per image) go through cnnlab.tasks.detection.metrics.evaluate_detections, the code (held against
pycocotools) that gives cnnlab's figure, so the ratio does not rest on two implementations of mAP.

Results: printed, and kept in bench/results/detect_raccoon.json (one entry per contender; --only replaces that
contender's entry and keeps the other, so cnnlab recipes can be tried against one Ultralytics run; every cnnlab
run is also appended to its `cnnlab_history`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchlib import BENCH_DIR, REPO, command_line, cores, cpu_model, load_average

RACCOON = REPO.parent / "shared" / "data" / "detection" / "raccoon"
RESULTS_JSON = BENCH_DIR / "results" / "detect_raccoon.json"
WORK = REPO / "runs" / "bench-detect-raccoon"  # runs/ is git-ignored
CLASSES = ["raccoon"]
TRAIN_COUNT = 160
IMAGE_SIZE, BATCH, THREADS = 320, 16, 2


# -- data ------------------------------------------------------------------------------------------------------


def voc_boxes(xml_path: Path) -> tuple[str, tuple[int, int], list[tuple[float, float, float, float]]]:
    """(image file name, (width, height), xyxy boxes in 0-based continuous pixels) of one VOC annotation.

    VOC corners are 1-based and inclusive (xmin=1..xmax=W is the whole image), so xmin and ymin move by one,
    exactly as cnnlab's reader does: both contenders then train on the same boxes.
    """
    root = ET.parse(xml_path).getroot()
    size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
    boxes = []
    for obj in root.findall("object"):
        x1, y1, x2, y2 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x1 - 1, y1 - 1, x2, y2))
    return root.findtext("filename"), size, boxes


def split_names(seed: int = 0, source: Path = RACCOON) -> tuple[list[str], list[str]]:
    """The seeded 160/40 split of the annotation stems (sorted first, so the split does not depend on the disk)."""
    import torch

    stems = sorted(p.stem for p in (source / "annotations").glob("*.xml"))
    order = torch.randperm(len(stems), generator=torch.Generator().manual_seed(seed)).tolist()
    return [stems[i] for i in order[:TRAIN_COUNT]], [stems[i] for i in order[TRAIN_COUNT:]]


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve())


def _yolo_lines(size: tuple[int, int], boxes: list[tuple[float, float, float, float]]) -> str:
    width, height = size
    rows = [
        f"0 {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
        for x1, y1, x2, y2 in boxes
    ]
    return "".join(row + "\n" for row in rows)


def prepare(out_dir: str | Path, seed: int = 0, source: Path = RACCOON) -> dict[str, str]:
    """Write the split for both tools under `out_dir`; returns the paths each one is given.

    - `yolo/`: images/{train,val} (copies: Ultralytics finds labels by rewriting the image path's /images/ to
      /labels/, and a symlink's target would not be looked at, but a copy keeps that independent of its
      version), labels/{train,val} (class cx cy w h, normalised), data.yaml.
    - `voc/train`, `voc/test`: XML + JPG symlinks for cnnlab.
    - `split.json`: the names of each side.
    """
    from cnnlab.io import atomic_write_json, atomic_write_text

    out = Path(out_dir).resolve()
    train, test = split_names(seed, source)
    yolo = out / "yolo"
    for side, stems in (("train", train), ("val", test)):
        for folder in (yolo / "images" / side, yolo / "labels" / side):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        for stem in stems:
            filename, size, boxes = voc_boxes(source / "annotations" / f"{stem}.xml")
            shutil.copyfile(source / "images" / filename, yolo / "images" / side / filename)
            atomic_write_text(yolo / "labels" / side / f"{Path(filename).stem}.txt", _yolo_lines(size, boxes))
    for cache in (yolo / "labels").glob("*.cache"):  # Ultralytics' label caches of an earlier split
        cache.unlink()
    data_yaml = yolo / "data.yaml"
    atomic_write_text(
        data_yaml,
        f"path: {yolo}\ntrain: images/train\nval: images/val\nnames: {json.dumps(CLASSES)}\n",
    )
    voc = out / "voc"
    for side, stems in (("train", train), ("test", test)):
        shutil.rmtree(voc / side, ignore_errors=True)
        for stem in stems:
            filename, _, _ = voc_boxes(source / "annotations" / f"{stem}.xml")
            _link(source / "annotations" / f"{stem}.xml", voc / side / f"{stem}.xml")
            _link(source / "images" / filename, voc / side / filename)
    atomic_write_json(out / "split.json", {"seed": seed, "train": train, "test": test})
    return {"data_yaml": str(data_yaml), "voc_train": str(voc / "train"), "voc_test": str(voc / "test")}


# -- Ultralytics (runs in a worker subprocess) -----------------------------------------------------------------


def _child_env(threads: int, config_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), YOLO_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    if config_dir is not None:
        env["YOLO_CONFIG_DIR"] = str(config_dir)
    return env


def _forbid_network() -> list[str]:
    """Make every internet connection and DNS look-up fail at once; the returned list collects what was tried."""
    import socket
    import traceback

    def caller() -> str:  # the innermost frame of the package that asked (ultralytics, requests ...)
        frames = [f for f in traceback.extract_stack()[:-2] if "socket" not in f.filename]
        useful = [f for f in frames if "ultralytics" in f.filename] or frames
        return f"{Path(useful[-1].filename).name}:{useful[-1].lineno} {useful[-1].name}"

    attempts: list[str] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(f"connect {address} from {caller()}")
            raise OSError("network disabled by bench/detect_raccoon.py")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            attempts.append(f"getaddrinfo {host} from {caller()}")
            raise socket.gaierror("network disabled by bench/detect_raccoon.py")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
    return attempts


def _install_font(config_dir: Path) -> None:
    """Arial.ttf in Ultralytics' config folder (any TrueType font will do: with plots off nothing is drawn)."""
    import matplotlib

    folder = config_dir / "Ultralytics"  # its USER_CONFIG_DIR is YOLO_CONFIG_DIR/Ultralytics
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "Arial.ttf"
    if not target.exists():
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


def _test_targets(data_yaml: Path) -> tuple[list[Path], list[dict]]:
    """The 40 test images and their boxes (original pixels), read back from the YOLO labels written by prepare."""
    import torch
    from PIL import Image

    images = sorted((data_yaml.parent / "images" / "val").iterdir())
    targets = []
    for image in images:
        width, height = Image.open(image).size
        rows = (data_yaml.parent / "labels" / "val" / f"{image.stem}.txt").read_text().split("\n")
        values = torch.tensor([[float(v) for v in row.split()[1:]] for row in rows if row.strip()]).reshape(-1, 4)
        cx, cy, w, h = (values[:, i] for i in range(4))
        boxes = torch.stack(
            [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1
        )
        targets.append({"boxes": boxes.float(), "labels": torch.zeros(len(boxes), dtype=torch.int64)})
    return images, targets


def _cnnlab_score(model, data_yaml: Path, threads: int) -> dict[str, float]:
    """Ultralytics' predictions on the test images scored by cnnlab's evaluator (the one behind cnnlab's figure)."""
    from cnnlab.tasks.detection.metrics import evaluate_detections

    images, targets = _test_targets(data_yaml)
    predictions = []
    for first in range(0, len(images), BATCH):
        batch = [str(p) for p in images[first : first + BATCH]]
        for result in model.predict(
            batch, imgsz=IMAGE_SIZE, conf=0.001, iou=0.7, max_det=100, device="cpu", verbose=False
        ):
            boxes = result.boxes
            predictions.append({"boxes": boxes.xyxy.float(), "scores": boxes.conf.float(), "labels": boxes.cls.long()})
    report = evaluate_detections(predictions, targets, CLASSES)
    # Tied scores (an untrained model gives every box the same one) leave the ranking, and so AP, to each
    # evaluator's tie-breaking: the two figures then differ, and mean nothing. Reported so that shows.
    scores = [float(s) for p in predictions for s in p["scores"]]
    distinct = len(set(scores)) / len(scores) if scores else 1.0
    return {
        "map50": report.map50,
        "map50_95": report.map50_95,
        "voc_map50": report.voc_map50,
        "distinct_score_fraction": round(distinct, 3),
    }


def ultralytics_worker(data_yaml: str, minutes: float, work: str, threads: int, seed: int = 0) -> dict:
    """Train YOLOv8n from its YAML for `minutes`, then validate best.pt; runs inside the worker subprocess."""
    attempts = _forbid_network()
    import torch

    torch.set_num_threads(threads)
    import ultralytics
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    torch_utils.NUM_THREADS = threads  # select_device() would reset torch to min(8, cpus - 1) threads
    seen_threads: list[int] = []
    model = YOLO("yolov8n.yaml")
    model.add_callback("on_train_epoch_start", lambda trainer: seen_threads.append(torch.get_num_threads()))
    start = time.perf_counter()
    model.train(
        data=data_yaml,
        imgsz=IMAGE_SIZE,
        batch=BATCH,
        epochs=1000,
        time=minutes / 60,
        pretrained=False,
        amp=False,
        plots=False,
        workers=0,
        device="cpu",
        seed=seed,
        deterministic=True,
        project=str(Path(work) / "ultralytics"),
        name="yolov8n",
        exist_ok=True,
        val=True,
        verbose=False,
    )
    train_wall = time.perf_counter() - start
    trainer = model.trainer
    best = Path(trainer.best)
    epochs_run = trainer.epoch + 1
    # Training + per-epoch validation up to the last epoch (what `time` limits), from its results.csv; the
    # final evaluation of best.pt that train() runs after it is left out, as cnnlab's train_seconds leaves its.
    rows = (Path(trainer.save_dir) / "results.csv").read_text().strip().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    train_seconds = float(last[[h.strip() for h in header].index("time")])
    start = time.perf_counter()
    final = YOLO(str(best))
    metrics = final.val(data=data_yaml, split="val", imgsz=IMAGE_SIZE, batch=BATCH, device="cpu", plots=False)
    val_seconds = time.perf_counter() - start
    return {
        "version": ultralytics.__version__,
        "map50": float(metrics.box.map50),
        "map50_95": float(metrics.box.map),
        "cnnlab_evaluator": _cnnlab_score(final, Path(data_yaml), threads),
        "epochs_run": epochs_run,
        "train_seconds": round(train_seconds, 1),
        "train_wall_seconds": round(train_wall, 1),
        "val_seconds": round(val_seconds, 1),
        "threads_seen": sorted(set(seen_threads)),
        "best": str(best),
        "network_attempts": attempts,
    }


def run_ultralytics(minutes: float, paths: dict[str, str], work: Path, threads: int = THREADS, seed: int = 0) -> dict:
    """The Ultralytics worker in a fresh interpreter (threads fixed before import, its config folder in `work`)."""
    config_dir = work / "ultralytics-config"
    _install_font(config_dir)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "ultralytics", "--minutes", str(minutes)]
    command += ["--work", str(work), "--threads", str(threads), "--seed", str(seed), "--data-yaml", paths["data_yaml"]]
    log = work / "ultralytics.log"
    start = time.perf_counter()
    with log.open("w") as handle:  # Ultralytics logs to stdout: all of it goes to the log, RESULT read back
        proc = subprocess.run(command, env=_child_env(threads, config_dir), stdout=handle, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    result = _result_line(log.read_text(errors="replace"))
    if proc.returncode != 0 or result is None:
        tail = log.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"ultralytics worker failed (exit {proc.returncode}), see {log}:\n" + "\n".join(tail))
    result["wall_seconds"] = round(wall, 1)
    result["log"] = str(log)
    return result


def _result_line(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


# -- cnnlab ----------------------------------------------------------------------------------------------------


def cnnlab_command(paths: dict[str, str], epochs: int, out: Path, threads: int, seed: int, extra: str) -> list[str]:
    command = [sys.executable, "-m", "cnnlab", "detect", "train", "--data", paths["voc_train"]]
    command += ["--test-data", paths["voc_test"], "--config", "detect_raccoon"]  # the packaged recipe
    command += ["--image-size", str(IMAGE_SIZE), "--batch-size", str(BATCH), "--epochs", str(epochs)]
    command += ["--threads", str(threads), "--seed", str(seed), "--device", "cpu", "--no-progress"]
    command += ["--out", str(out), "--overwrite", *shlex.split(extra)]
    return command


def _cnnlab_once(paths: dict[str, str], epochs: int, out: Path, threads: int, seed: int, extra: str) -> dict:
    command = cnnlab_command(paths, epochs, out, threads, seed, extra)
    log = out.parent / f"{out.name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run(command, env=_child_env(threads), stdout=handle, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise SystemExit(f"cnnlab failed (exit {proc.returncode}), see {log}:\n" + "\n".join(tail))
    results = json.loads((out / "results.json").read_text())
    return {
        "map50": results["test"]["map50"],
        "map50_95": results["test"]["map50_95"],
        "voc_map50": results["test"].get("voc_map50"),
        "best_epoch": results.get("best_epoch"),
        "epochs_run": results.get("epochs_run"),
        "epochs": epochs,
        "train_seconds": results.get("train_seconds"),
        "wall_seconds": round(wall, 1),
        "command": shlex.join(["cnnlab", *command[3:]]),
        "run": str(out),
        "log": str(log),
    }


def run_cnnlab(
    minutes: float,
    epochs: int | None,
    paths: dict[str, str],
    work: Path,
    threads: int = THREADS,
    seed: int = 0,
    extra: str = "",
) -> dict:
    """`cnnlab detect train` for `epochs` (or as many as a one-epoch probe says fit in `minutes`)."""
    probe_seconds = None
    if epochs is None:
        probe = _cnnlab_once(paths, 1, work / "cnnlab-probe", threads, seed, extra)
        probe_seconds = probe["train_seconds"]
        epochs = max(1, int(minutes * 60 / probe_seconds))
        print(f"cnnlab probe: one epoch in {probe_seconds:.0f} s -> {epochs} epochs for {minutes:g} minutes")
    result = _cnnlab_once(paths, epochs, work / "cnnlab", threads, seed, extra)
    result["probe_epoch_seconds"] = probe_seconds
    result["extra_args"] = extra
    return result


# -- report ----------------------------------------------------------------------------------------------------


def _load_previous() -> dict:
    try:
        return json.loads(RESULTS_JSON.read_text())
    except (OSError, ValueError):
        return {}


def _describe(name: str, result: dict | None, minutes: float) -> list[str]:
    if not result:
        return [f"{name}: not run"]
    lines = [
        f"{name}: mAP@0.5 {result['map50']:.4f}, mAP@0.5:0.95 {result['map50_95']:.4f}, "
        f"{result['epochs_run']} epochs, training {result['train_seconds']:.0f} s of {minutes * 60:.0f} s budget, "
        f"wall {result['wall_seconds']:.0f} s"
    ]
    if "cnnlab_evaluator" in result:
        other = result["cnnlab_evaluator"]
        lines.append(
            f"  same predictions, cnnlab's evaluator: mAP@0.5 {other['map50']:.4f}, "
            f"mAP@0.5:0.95 {other['map50_95']:.4f}"
            + (
                f" (only {other['distinct_score_fraction']:.0%} of its scores distinct: ties, ranking undefined)"
                if other.get("distinct_score_fraction", 1.0) < 0.5
                else ""
            )
        )
        lines.append(
            f"  torch threads during training: {result['threads_seen']}; "
            f"network attempts: {len(result['network_attempts'])}"
        )
    if result.get("recorded") and result.get("from_previous"):
        lines.append(f"  (recorded {result['recorded']}, not re-run)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="training time of each contender")
    parser.add_argument("--only", choices=["ultralytics", "cnnlab"], help="run one contender (the other from the JSON)")
    parser.add_argument("--epochs", type=int, help="cnnlab epochs (default: as many as a probe epoch says fit)")
    parser.add_argument("--cnnlab-args", default="", help="extra `cnnlab detect train` flags, one string")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(WORK), help="where the data copies and runs go")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data-yaml", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "ultralytics":
        result = ultralytics_worker(args.data_yaml, args.minutes, args.work, args.threads, args.seed)
        print("RESULT " + json.dumps(result), flush=True)
        return

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work / "data", args.seed)
    load_before = load_average()
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    previous = _load_previous()
    record = {"ultralytics": previous.get("ultralytics"), "cnnlab": previous.get("cnnlab")}
    for name in ("ultralytics", "cnnlab"):
        if record[name]:
            record[name]["from_previous"] = True
    if args.only in (None, "ultralytics"):
        record["ultralytics"] = run_ultralytics(args.minutes, paths, work, args.threads, args.seed)
    if args.only in (None, "cnnlab"):
        record["cnnlab"] = run_cnnlab(args.minutes, args.epochs, paths, work, args.threads, args.seed, args.cnnlab_args)
    for name in ("ultralytics", "cnnlab"):
        if record[name] and not record[name].get("from_previous"):
            record[name].update(recorded=stamp, minutes=args.minutes, threads=args.threads, seed=args.seed)

    print(f"machine: {cpu_model()}, {cores()} cores, {platform.system()} {platform.release()}")
    print(f"load average (1 min): {load_before:.2f} at the start, {load_average():.2f} at the end")
    print(
        f"raccoon, seeded {TRAIN_COUNT}/40 split (seed {args.seed}), image size {IMAGE_SIZE}, batch {BATCH}, "
        f"{args.threads} threads, {args.minutes:g} minutes of training each"
    )
    for name in ("ultralytics", "cnnlab"):
        print("\n".join(_describe(name, record[name], record[name]["minutes"] if record[name] else args.minutes)))
    ratio = None
    if record["ultralytics"] and record["cnnlab"] and record["ultralytics"]["map50"] > 0:
        ratio = record["cnnlab"]["map50"] / record["ultralytics"]["map50"]
        print(f"ratio cnnlab/ultralytics mAP@0.5: {ratio:.2f}")

    history = previous.get("cnnlab_history", [])
    if args.only in (None, "cnnlab"):
        history.append(record["cnnlab"])
    for name in ("ultralytics", "cnnlab"):
        if record[name]:
            record[name].pop("from_previous", None)
    payload = {
        "command": command_line(),
        "machine": {
            "cpu": cpu_model(),
            "cores": cores(),
            "load_before": load_before,
            "python": platform.python_version(),
        },
        **record,
        "ratio_map50": ratio,
        "cnnlab_history": history,
    }
    from cnnlab.io import atomic_write_json

    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS_JSON, payload)
    print(f"wrote {RESULTS_JSON.relative_to(REPO)}")


if __name__ == "__main__":
    main()
