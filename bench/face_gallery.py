"""Face gallery speed as it grows: identify with the in-memory matrix against faiss, 10 k to 1 M embeddings.

    python bench/face_gallery.py                        # 10 k, 100 k and 1 M: ~1.5 min on 2 cores, ~3 GB at 1 M
    python bench/face_gallery.py --sizes 10000          # a smoke test

Synthetic on purpose (speed, not accuracy): random unit 128-d embeddings, 10 per person, so a gallery of N
embeddings holds N/10 people. Queries are noisy copies of enrolled embeddings (noise as long as the signal:
cosine ~0.7 to their source, like a new photo of an enrolled person), so "top-1 correct" says whether an
approximate index still finds the person.

Per size: the .db is built with `enroll_many` (100 k rows per transaction, executemany), reopened, and each
contender's load (matrix from the db, plus the faiss index) is timed. Then identify, top 5 people: one query at
a time (p50 over --queries, contenders interleaved A B B A so that load drift cancels) and a batch of --batch
queries (median of 3); then per-person enroll transactions (each one committed and fsync'd) and the first
identify after them (the matrix takes the new rows without a reload). Contenders: `exact` (one matrix product +
a per-person max in torch), and with faiss-cpu installed `faiss` (IndexFlatIP, exact) and `faiss-ivf`
(IndexIVFFlat, sqrt(N) lists, 1/4 probed). Printed, and written to bench/results/face_gallery.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sqlite3
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import BENCH_DIR, REPO, choose_threads, command_line, cores, cpu_model, load_average, markdown_table

from cnnlab.tasks.faces.gallery import Gallery

RESULTS_JSON = BENCH_DIR / "results" / "face_gallery.json"
DIM = 128
MODEL_ID = "bench-synthetic"
IMPORT_CHUNK = 100_000  # rows per enroll_many transaction while building the db
ENROLLS = 50  # per-person enroll transactions timed per size


def unit_rows(generator: torch.Generator, rows: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(rows, DIM, generator=generator), dim=1)


def build(path: Path, size: int, per_person: int, seed: int) -> dict:
    """The gallery db of `size` embeddings; returns its build time, and the rows the queries copy."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with Gallery(path, MODEL_ID, DIM) as gallery:
        for first in range(0, size, IMPORT_CHUNK):
            rows = unit_rows(generator, min(IMPORT_CHUNK, size - first))
            names = [f"person{(first + i) // per_person:07d}" for i in range(len(rows))]
            gallery.enroll_many(names, rows, [f"synthetic/{first + i}.jpg" for i in range(len(rows))])
    seconds = time.perf_counter() - start
    return {"build_seconds": seconds, "import_rows_per_second": size / seconds, "db_bytes": path.stat().st_size}


def queries(path: Path, count: int, per_person: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Noisy copies of random enrolled rows, and the person each was copied from."""
    rng = np.random.default_rng(seed)
    with sqlite3.connect(path) as connection:
        size = connection.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        picks = sorted(rng.choice(size, count, replace=False).tolist())  # ids are 1..size in import order
        marks = ", ".join("?" * count)
        blobs = connection.execute(
            f"SELECT vector FROM embeddings WHERE id IN ({marks}) ORDER BY id", [p + 1 for p in picks]
        )
        rows = torch.from_numpy(np.frombuffer(b"".join(b for (b,) in blobs), dtype="<f4").reshape(count, DIM).copy())
    connection.close()
    noise = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((count, DIM)).astype(np.float32)), dim=1)
    return rows + noise, [f"person{p // per_person:07d}" for p in picks]


def open_contenders(path: Path, names: list[str]) -> tuple[dict[str, Gallery], dict[str, float]]:
    galleries, load = {}, {}
    for name in names:
        start = time.perf_counter()
        galleries[name] = Gallery.open(path, MODEL_ID, DIM, index=name)
        galleries[name].load()
        load[name] = time.perf_counter() - start
    return galleries, load


def single_query_ms(galleries: dict[str, Gallery], probes: torch.Tensor) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in galleries}
    for gallery in galleries.values():
        gallery.identify(probes[:1])  # warm-up
    for index in range(len(probes)):
        order = list(galleries) if index % 2 == 0 else list(reversed(galleries))
        for name in order:
            start = time.perf_counter()
            galleries[name].identify(probes[index : index + 1], top_k=5)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def batch_ms(galleries: dict[str, Gallery], batch: torch.Tensor, truth: list[str]) -> tuple[dict, dict, dict]:
    times: dict[str, list[float]] = {name: [] for name in galleries}
    found = {}
    for repeat in range(3):
        order = list(galleries) if repeat % 2 == 0 else list(reversed(galleries))
        for name in order:
            start = time.perf_counter()
            found[name] = galleries[name].identify(batch, top_k=5)
            times[name].append((time.perf_counter() - start) * 1000)
    correct = {name: sum(r[0][0] == t for r, t in zip(rows, truth)) / len(truth) for name, rows in found.items()}
    agree = {
        name: sum(a[0][0] == b[0][0] for a, b in zip(rows, found["exact"])) / len(truth) for name, rows in found.items()
    }
    return {name: statistics.median(values) for name, values in times.items()}, correct, agree


def enroll_and_search(gallery: Gallery, generator: torch.Generator, per_person: int, probe: torch.Tensor) -> dict:
    """Per-person enroll transactions, then the first identify (it appends the new rows to the matrix)."""
    start = time.perf_counter()
    for person in range(ENROLLS):
        gallery.enroll(f"new{person:04d}", unit_rows(generator, per_person))
    enroll_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gallery.identify(probe)
    first = (time.perf_counter() - start) * 1000
    steady = []
    for _ in range(5):
        start = time.perf_counter()
        gallery.identify(probe)
        steady.append((time.perf_counter() - start) * 1000)
    return {
        "enroll_ms_per_transaction": enroll_seconds / ENROLLS * 1000,
        "enroll_embeddings_per_second": ENROLLS * per_person / enroll_seconds,
        "identify_after_enroll_ms": first,
        "identify_steady_ms": statistics.median(steady),
    }


def measure(size: int, args: argparse.Namespace, names: list[str]) -> dict:
    path = Path(args.work) / f"gallery_{size}.db"
    record = {"embeddings": size, "people": -(-size // args.per_person), **build(path, size, args.per_person, 0)}
    print(f"{size:,} embeddings: db built in {record['build_seconds']:.1f} s", flush=True)
    probes, truth = queries(path, args.queries + args.batch, args.per_person, seed=1)
    galleries, load = open_contenders(path, names)
    try:
        single = single_query_ms(galleries, probes[: args.queries])
        batch, correct, agree = batch_ms(galleries, probes[args.queries :], truth[args.queries :])
        enroll = enroll_and_search(galleries["exact"], torch.Generator().manual_seed(2), args.per_person, probes[:1])
    finally:
        for gallery in galleries.values():
            gallery.close()
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    record["contenders"] = {
        name: {
            "load_seconds": load[name],
            "single_query_p50_ms": statistics.median(single[name]),
            "single_query_ms": single[name],
            "batch_ms": batch[name],
            "batch_ms_per_query": batch[name] / args.batch,
            "top1_correct": correct[name],
            "top1_agrees_with_exact": agree[name],
        }
        for name in names
    }
    record["enroll"] = enroll
    return record


def tables(records: list[dict], batch: int) -> str:
    rows, enroll_rows = [], []
    for record in records:
        exact = record["contenders"]["exact"]
        for name, figures in record["contenders"].items():
            rows.append(
                [
                    f"{record['embeddings']:,}",
                    name,
                    f"{figures['load_seconds']:.2f}",
                    f"{figures['single_query_p50_ms']:.2f}",
                    f"{figures['single_query_p50_ms'] / exact['single_query_p50_ms']:.2f}",
                    f"{figures['batch_ms']:.0f}",
                    f"{figures['batch_ms'] / exact['batch_ms']:.2f}",
                    f"{figures['top1_correct']:.3f}",
                ]
            )
        enroll = record["enroll"]
        enroll_rows.append(
            [
                f"{record['embeddings']:,}",
                f"{record['build_seconds']:.1f}",
                f"{record['import_rows_per_second']:,.0f}",
                f"{record['db_bytes'] / 2**20:,.0f}",
                f"{enroll['enroll_ms_per_transaction']:.1f}",
                f"{enroll['identify_after_enroll_ms']:.1f}",
                f"{enroll['identify_steady_ms']:.1f}",
            ]
        )
    header = ["embeddings", "index", "load s", "1 query p50 ms", "/ exact", f"{batch} queries ms", "/ exact"]
    search = markdown_table([*header, "top-1 correct"], rows)
    header = ["embeddings", "import s", "import rows/s", "db MiB", "enroll ms/transaction"]
    writes = markdown_table([*header, "identify after enroll ms", "identify steady ms"], enroll_rows)
    return search + "\n\n" + writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="gallery sizes in embeddings, comma-separated")
    parser.add_argument("--per-person", type=int, default=10, help="embeddings per enrolled person")
    parser.add_argument("--queries", type=int, default=50, help="single queries timed (p50)")
    parser.add_argument("--batch", type=int, default=256, help="queries in the batch timed")
    parser.add_argument("--threads", default=None, help="torch and faiss threads (default: idle cores)")
    parser.add_argument("--no-faiss", action="store_true", help="time the matrix search only")
    parser.add_argument("--work", default="/tmp/cnnlab_face_gallery", help="folder for the .db files")
    parser.add_argument("--keep", action="store_true", help="keep the .db files")
    args = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()]
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    has_faiss = not args.no_faiss and importlib.util.find_spec("faiss") is not None
    names = ["exact", "faiss", "faiss-ivf"] if has_faiss else ["exact"]
    faiss_version = None
    if has_faiss:
        import faiss

        faiss.omp_set_num_threads(threads)
        faiss_version = faiss.__version__
    Path(args.work).mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    print(command_line(), flush=True)
    records = [measure(size, args, names) for size in sizes]

    print(f"machine: {cpu_model()}, {cores()} cores, {platform.system()} {platform.release()}")
    print(f"load average (1 min): {load_before:.2f} at the start, {load_average():.2f} at the end")
    print(f"torch {torch.__version__}, faiss {faiss_version or 'not installed'}, {threads} threads")
    print(f"{DIM}-d unit embeddings, {args.per_person} per person; top 5 people per query\n")
    print(tables(records, args.batch))
    ratios = {
        f"{record['embeddings']}/{name}": record["contenders"][name]["single_query_p50_ms"]
        / record["contenders"]["exact"]["single_query_p50_ms"]
        for record in records
        for name in names
        if name != "exact"
    }
    for key, ratio in ratios.items():
        print(f"ratio {key.split('/')[1]}/exact, 1 query, {int(key.split('/')[0]):,} embeddings: {ratio:.2f}")
    payload = {
        "command": command_line(),
        "machine": {
            "cpu": cpu_model(),
            "cores": cores(),
            "load_before": load_before,
            "load_after": load_average(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "faiss": faiss_version,
            "threads": threads,
        },
        "settings": {"dim": DIM, "per_person": args.per_person, "queries": args.queries, "batch": args.batch},
        "sizes": records,
        "ratio_single_query_vs_exact": ratios,
        "recorded": time.strftime("%Y-%m-%d %H:%M"),
    }
    from cnnlab.io import atomic_write_json

    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS_JSON, payload)
    print(f"wrote {RESULTS_JSON.relative_to(REPO)}")


if __name__ == "__main__":
    main()
