"""dlib's pretrained ResNet face embedder on Olivetti: the reference that cnnlab's faces recipe is set beside.

    python bench/faces_dlib.py                  # cnnlab's 10 unseen test people and all 40: ~2 min on 2 cores
    python bench/faces_dlib.py --people test    # the test people only

Bench-only packages (never cnnlab dependencies; the model files ship inside face_recognition_models, nothing is
downloaded at run time):

    pip install --only-binary=:all: dlib-bin          # a wheel: pip never builds dlib from source
    pip install face_recognition_models==0.3.0        # an sdist of data files only (the 0.1.3 wheel lacks the
                                                      # 5-point predictor)

The test people are exactly those cnnlab's recipe tests on: `split_people(sorted(folders), 10, 5, seed=0)["test"]`.
Olivetti images are already crops, so each face box given to dlib's 5-point shape predictor is one of:
`image` (the whole 92x112 image), `padded` (the whole image, inside a copy padded by replicating its edges, so
that dlib's 150x150 face chip, which reaches 25 % past the box, sees edge pixels instead of black) and `hog`
(dlib's own HOG detector on the padded copy, the largest box; the whole image where it finds none).
`compute_face_descriptor(rgb, shape)` (grey repeated to RGB, no jitter) gives 128-d descriptors. The box
decides everything: dlib's alignment was trained on its detector's boxes, which are tighter than these crops, so
`hog` is dlib as designed (measured: 100 % top-1 with one enrolment image) and the whole-image boxes lose ~16
points. dlib runs on one core (user time = wall time), so images/s is per core.

Scored twice: with cnnlab's `evaluate_faces` (cosine of the L2-normalised descriptors, its seeded protocol:
verification AUC/EER/TAR@FAR, top-1/top-5 with 1 and 3 enrolment images, open-set DIR@FAR), and with dlib's own
rule (Euclidean distance of the raw descriptors, "same person" below 0.6), on the same seeded enrolment draws.
Printed, and written to bench/results/faces_dlib.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from benchlib import BENCH_DIR, REPO, command_line, cores, cpu_model, load_average, markdown_table
from PIL import Image

from cnnlab.errors import DataError
from cnnlab.io import atomic_write_json
from cnnlab.tasks.faces.data import split_people
from cnnlab.tasks.faces.metrics import evaluate_faces

ARCHIVE = REPO.parent / "shared" / "data" / "faces" / "olivetti" / "att_faces.zip"
RESULTS_JSON = BENCH_DIR / "results" / "faces_dlib.json"
WORK = REPO / "runs" / "bench-faces-dlib"  # git-ignored
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
DLIB_THRESHOLD = 0.6  # dlib's / face_recognition's "same person" Euclidean distance
PAD_FRACTION = 0.25  # of the image's larger side, each side: what get_face_chip's padding reaches
BOXES = ("image", "padded", "hog")
SEED, TRIALS, UNKNOWN_FRACTION = 0, 5, 0.5  # cnnlab's evaluate_faces defaults, replicated for the dlib rule
WARMUP = 5


# -- data --------------------------------------------------------------------------------------------------------


def olivetti_people(archive: Path, work: Path) -> tuple[Path, dict[str, list[Path]]]:
    """(the folder unzipped into, under runs/ and never in the tracked tree; {person folder: its PGM files})."""
    if not archive.is_file():
        raise DataError(f"{archive}: no such file (the AT&T / Olivetti faces archive)")
    work.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="olivetti-", dir=work))
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(target)
    people: dict[str, list[Path]] = {}
    for path in sorted(target.rglob("*.pgm")):
        people.setdefault(path.parent.name, []).append(path)
    if len(people) != 40:
        raise DataError(f"{archive}: expected 40 people folders, found {len(people)}")
    return target, people


def read_grey(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


# -- dlib --------------------------------------------------------------------------------------------------------


def model_file(name: str) -> str:
    """A model file inside face_recognition_models, found without importing it (its __init__ needs pkg_resources,
    which current setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("face_recognition_models is not installed: pip install face_recognition_models==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise DataError(f"{path}: missing (face_recognition_models 0.1.3 lacks it; install 0.3.0)")
    return str(path)


class DlibEmbedder:
    """Face box -> 5 landmarks -> aligned 150x150 chip -> 128-d descriptor, timed per stage."""

    def __init__(self) -> None:
        import dlib

        self.dlib = dlib
        self.shape = dlib.shape_predictor(model_file(SHAPE_MODEL))
        self.net = dlib.face_recognition_model_v1(model_file(RECOGNITION_MODEL))
        self.detector = dlib.get_frontal_face_detector()
        self.seconds = {"box": 0.0, "landmarks": 0.0, "descriptor": 0.0}

    def box(self, grey: np.ndarray, kind: str) -> tuple[np.ndarray, object, bool]:
        """(image to embed from, the face rectangle in it, whether the detector found a face)."""
        height, width = grey.shape
        if kind == "image":
            return grey, self.dlib.rectangle(0, 0, width - 1, height - 1), False
        pad = round(PAD_FRACTION * max(height, width))
        padded = np.ascontiguousarray(np.pad(grey, pad, mode="edge"))
        whole = self.dlib.rectangle(pad, pad, pad + width - 1, pad + height - 1)
        if kind == "padded":
            return padded, whole, False
        found = list(self.detector(padded, 1))
        if not found:
            return padded, whole, False
        return padded, max(found, key=lambda r: r.area()), True

    def embed(self, grey: np.ndarray, kind: str) -> tuple[np.ndarray, bool]:
        start = time.perf_counter()
        image, rect, detected = self.box(grey, kind)
        rgb = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
        landmarks_at = time.perf_counter()
        shape = self.shape(rgb, rect)
        descriptor_at = time.perf_counter()
        vector = np.asarray(self.net.compute_face_descriptor(rgb, shape), dtype=np.float64)
        done = time.perf_counter()
        self.seconds["box"] += landmarks_at - start
        self.seconds["landmarks"] += descriptor_at - landmarks_at
        self.seconds["descriptor"] += done - descriptor_at
        return vector, detected

    def detected_unpadded(self, greys: list[np.ndarray], upsample: int) -> int:
        """How many tight crops dlib's detector finds a face in as they are (for the notes)."""
        return sum(bool(len(self.detector(grey, upsample))) for grey in greys)


def embed_all(embedder: DlibEmbedder, greys: list[np.ndarray], kind: str) -> dict:
    for grey in greys[:WARMUP]:
        embedder.embed(grey, kind)
    embedder.seconds = dict.fromkeys(embedder.seconds, 0.0)
    start = time.perf_counter()
    vectors, detected = zip(*(embedder.embed(grey, kind) for grey in greys), strict=True)
    seconds = time.perf_counter() - start
    return {
        "descriptors": np.stack(vectors),
        "detected": int(sum(detected)),
        "seconds": seconds,
        "images_per_second": len(greys) / seconds,
        "stage_ms_per_image": {stage: 1000 * s / len(greys) for stage, s in embedder.seconds.items()},
    }


# -- dlib's own rule, on cnnlab's seeded draws -------------------------------------------------------------------


def _members(labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == person) for person in np.unique(labels)]


def _enrol(members: list[np.ndarray], persons, k: int, rng: np.random.Generator):
    """cnnlab's draw (metrics._enrol) replicated: per person in order, a permutation; the first k enrolled."""
    enrolled, probes, truth = [], [], []
    for column, person in enumerate(persons):
        drawn = rng.permutation(members[person])
        enrolled.append(drawn[:k])
        probes.append(drawn[k:])
        truth.append(np.full(len(drawn) - k, column))
    return np.concatenate(enrolled), np.concatenate(probes), np.concatenate(truth)


def _nearest(x: np.ndarray, probes: np.ndarray, enrolled: np.ndarray, k: int, metric: str):
    """(nearest person column, its score) per probe: Euclidean distance (lower wins) or cosine (higher wins)."""
    if metric == "euclidean":
        scores = np.linalg.norm(x[probes][:, None, :] - x[enrolled][None, :, :], axis=2)
        per_person = scores.reshape(len(probes), -1, k).min(axis=2)
        return per_person.argmin(axis=1), per_person.min(axis=1)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    per_person = (unit[probes] @ unit[enrolled].T).reshape(len(probes), -1, k).max(axis=2)
    return per_person.argmax(axis=1), per_person.max(axis=1)


def closed_set(x: np.ndarray, labels: np.ndarray, k: int, metric: str) -> dict:
    members, rng = _members(labels), np.random.default_rng(SEED)
    top1, accepted = [], []
    for _ in range(TRIALS):
        enrolled, probes, truth = _enrol(members, range(len(members)), k, rng)
        person, distance = _nearest(x, probes, enrolled, k, metric)
        top1.append(np.mean(person == truth))
        accepted.append(np.mean((person == truth) & (distance <= DLIB_THRESHOLD)))
    result = {"top1": float(np.mean(top1))}
    if metric == "euclidean":
        result["top1_within_0.6"] = float(np.mean(accepted))
    return result


def open_set(x: np.ndarray, labels: np.ndarray, k: int = 1) -> dict:
    """cnnlab's open-set draws (half the people out of the gallery), decided by dlib's 0.6 rule."""
    members, rng = _members(labels), np.random.default_rng(SEED)
    count = len(members)
    unknown_count = min(max(round(UNKNOWN_FRACTION * count), 1), count - 1)
    rejected, identified = [], []
    for _ in range(TRIALS):
        shuffled = rng.permutation(count)
        unknown, known = np.sort(shuffled[:unknown_count]), np.sort(shuffled[unknown_count:])
        enrolled, probes, truth = _enrol(members, known, k, rng)
        person, distance = _nearest(x, probes, enrolled, k, "euclidean")
        identified.append(np.mean((person == truth) & (distance <= DLIB_THRESHOLD)))
        strangers = np.concatenate([members[p] for p in unknown])
        _, nearest = _nearest(x, strangers, enrolled, k, "euclidean")
        rejected.append(np.mean(nearest > DLIB_THRESHOLD))
    return {"dir_at_0.6": float(np.mean(identified)), "unknown_rejected_at_0.6": float(np.mean(rejected))}


def pairs_at_threshold(x: np.ndarray, labels: np.ndarray) -> dict:
    first, second = np.triu_indices(len(x), k=1)
    distance = np.linalg.norm(x[first] - x[second], axis=1)
    genuine = labels[first] == labels[second]
    same = distance <= DLIB_THRESHOLD
    return {
        "tar_at_0.6": float(same[genuine].mean()),
        "far_at_0.6": float(same[~genuine].mean()),
        "genuine_distance_max": float(distance[genuine].max()),
        "impostor_distance_min": float(distance[~genuine].min()),
    }


def dlib_rule(x: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "pairs": pairs_at_threshold(x, labels),
        "k1": closed_set(x, labels, 1, "euclidean"),
        "k3": closed_set(x, labels, 3, "euclidean"),
        "open_set_k1": open_set(x, labels),
    }


# -- one row -----------------------------------------------------------------------------------------------------


def score(x: np.ndarray, labels: np.ndarray) -> dict:
    evaluation = evaluate_faces(x.astype(np.float32), labels, seed=SEED).to_dict()
    top1 = evaluation["identification"]["k1"]["top1"]
    replica = closed_set(x, labels, 1, "cosine")["top1"]  # the replicated draws must give cnnlab's own figure
    return {
        "cnnlab": evaluation,
        "dlib_rule": dlib_rule(x, labels),
        "draws_match_cnnlab": bool(abs(round(replica, 4) - top1) < 1e-9),
        "descriptor_norm": {
            "mean": float(np.linalg.norm(x, axis=1).mean()),
            "std": float(np.linalg.norm(x, axis=1).std()),
        },
    }


def table_row(people: str, box: str, row: dict) -> list:
    ev, rule = row["cnnlab"], row["dlib_rule"]
    v, k1, k3, op = ev["verification"], ev["identification"]["k1"], ev["identification"]["k3"], ev["open_set"]
    pct = lambda value: f"{100 * value:.1f}"  # noqa: E731
    return [
        f"{people} ({row['people']})",
        box,
        f"{v['auc']:.4f}",
        pct(v["eer"]),
        pct(v["tar_at_far"]["0.01"]),
        pct(k1["top1"]),
        pct(k1["top5"]),
        pct(k3["top1"]),
        pct(op["dir_at_far"]["0.01"]),
        pct(op["dir_at_far"]["0.1"]),
        pct(rule["k1"]["top1"]),
        pct(rule["k3"]["top1"]),
        pct(rule["pairs"]["tar_at_0.6"]),
        pct(rule["pairs"]["far_at_0.6"]),
        pct(rule["open_set_k1"]["unknown_rejected_at_0.6"]),
    ]


HEADER = [
    "people",
    "face box",
    "AUC",
    "EER %",
    "TAR@FAR1% %",
    "top-1 k=1 %",
    "top-5 k=1 %",
    "top-1 k=3 %",
    "DIR@FAR1% %",
    "DIR@FAR10% %",
    "L2 top-1 k=1 %",
    "L2 top-1 k=3 %",
    "TAR@0.6 %",
    "FAR@0.6 %",
    "unknown rejected@0.6 %",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", choices=("both", "test", "all"), default="both")
    parser.add_argument("--boxes", nargs="+", choices=BOXES, default=list(BOXES))
    parser.add_argument("--data", type=Path, default=ARCHIVE)
    parser.add_argument("--keep", action="store_true", help="keep the unzipped images under runs/")
    args = parser.parse_args()

    import dlib

    load_before = load_average()
    unzipped, people = olivetti_people(args.data, WORK)
    names = sorted(people)
    test_names = split_people(names, 10, 5, seed=0)["test"]
    files = [path for name in names for path in people[name]]
    labels = np.array([names.index(path.parent.name) for path in files], dtype=np.int64)
    greys = [read_grey(path) for path in files]
    embedder = DlibEmbedder()
    subsets = {"all": np.ones(len(files), bool), "test": np.isin(labels, [names.index(n) for n in test_names])}
    wanted = ["test", "all"] if args.people == "both" else [args.people]

    rows, timing = [], {}
    for box in args.boxes:
        embedded = embed_all(embedder, greys, box)
        timing[box] = {key: value for key, value in embedded.items() if key != "descriptors"}
        for subset in wanted:
            mask = subsets[subset]
            row = score(embedded["descriptors"][mask], labels[mask])
            rows.append({"subset": subset, "box": box, "people": int(len(np.unique(labels[mask]))), **row})
            rows[-1]["images"] = int(mask.sum())

    tight = {f"upsample{u}": embedder.detected_unpadded(greys, u) for u in (0, 1)}
    if not args.keep:
        shutil.rmtree(unzipped, ignore_errors=True)
    table = markdown_table(HEADER, [table_row(r["subset"], r["box"], r) for r in rows])
    print(table)
    for box, t in timing.items():
        stages = ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in t["stage_ms_per_image"].items())
        found = f"; HOG found a face in {t['detected']}/{len(greys)}" if box == "hog" else ""
        print(f"- {box}: {t['images_per_second']:.1f} images/s ({stages}){found}")
    print(f"- dlib's HOG detector on the unpadded 92x112 crops: {tight} faces found of {len(greys)}")
    print(f"- test people: {', '.join(test_names)}")
    print(f"- {cpu_model()}, {cores()} cores, load {load_before:.2f} -> {load_average():.2f}, dlib {dlib.__version__}")
    atomic_write_json(
        RESULTS_JSON,
        {
            "benchmark": "faces_dlib",
            "command": command_line(),
            "machine": {
                "cpu": cpu_model(),
                "cores": cores(),
                "platform": f"{platform.system()} {platform.release()}",
                "python": platform.python_version(),
                "dlib": dlib.__version__,
                "load_average_before": round(load_before, 2),
                "load_average_after": round(load_average(), 2),
            },
            "protocol": {
                "data": "AT&T / Olivetti, 40 people x 10 grey 92x112 crops",
                "test_people": test_names,
                "split": "cnnlab.tasks.faces.data.split_people(sorted(people), 10, 5, seed=0)['test']",
                "models": [RECOGNITION_MODEL, SHAPE_MODEL],
                "num_jitters": 1,
                "pad_fraction": PAD_FRACTION,
                "dlib_threshold": DLIB_THRESHOLD,
                "seed": SEED,
                "trials": TRIALS,
            },
            "hog_on_unpadded_crops": tight,
            "timing": timing,
            "rows": rows,
        },
    )
    print(f"wrote {RESULTS_JSON.relative_to(REPO)}")


if __name__ == "__main__":
    main()
