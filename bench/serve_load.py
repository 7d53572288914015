"""Load test: the real `cnnlab serve` on loopback under concurrent clients, dynamic batching on vs off.

    python bench/serve_load.py               # 64 clients, servers on, off, off, on (30 s of load each)
    python bench/serve_load.py --quick       # the same with 8 s each (make bench, about 80 s)
    python bench/serve_load.py --soak 180    # one server (batching on) under load for 3 minutes: RSS start vs end
    python bench/serve_load.py --run RUN     # an existing image-classification run instead of a fresh LeNet-5

A LeNet-5 is trained for one short epoch with `fit` (the weights do not matter for speed, only for the answers
to be checked), MNIST test digits are written as PNG files and `predict_files` (what `cnnlab predict` prints)
gives the expected answer for each. Each round starts `python -m cnnlab serve RUN --port P` as a subprocess,
waits for /health, sends a short warm-up, then `--clients` concurrent clients (threads, one keep-alive
connection each) POST the PNGs to /predict for `--seconds` or `--requests`, whichever ends first, and the server
is stopped (SIGINT, then SIGKILL) whatever happens. Every answer's labels must equal the expected ones and its
probabilities agree within 1e-4 (a different batch composition may change the last float bits).

The load generator runs on the same cores as the server: its own CPU time is measured and reported beside the
server's, so a figure limited by the client shows as such.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
from benchlib import (
    MNIST,
    REPO,
    append_results,
    choose_threads,
    cores,
    cpu_model,
    load_average,
    markdown_table,
    median,
    quiet,
)
from PIL import Image

TOLERANCE = 1e-4
TOP_K = 3


@dataclass
class Expected:
    name: str
    body: bytes  # the whole multipart/form-data request body, field `file`
    headers: dict[str, str]
    labels: list[str]
    probabilities: list[float]


@dataclass
class Round:
    mode: str
    clients: int
    requests: int = 0
    errors: int = 0
    wrong: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # the first few errors, to print
    max_difference: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    mean_batch: float = float("nan")

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def server_ms_per_request(self) -> float:
        return self.server_cpu * self.elapsed / self.requests * 1e3 if self.requests else float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3 if self.latencies else float("nan")


# -- the run and its expected answers ------------------------------------------------------------------------------


def trained_run(model: str, out: Path, threads: int) -> Path:
    from cnnlab.config import build_dataclass
    from cnnlab.train import TrainConfig, fit

    values = dict(model=model, data=str(MNIST), epochs=1, train_samples=2048, val_split=0.0, batch_size=128)
    values.update(optimizer={"name": "adam", "lr": 1e-3}, out=str(out), threads=threads)
    with quiet():
        return fit(build_dataclass(TrainConfig, values), overwrite=True).run_dir


def digit_pngs(folder: Path, count: int) -> list[Path]:
    """The first `count` MNIST test digits as PNG files (real uploads: compressed, decoded by the server)."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as handle:
        raw = handle.read(16 + count * 784)
    digits = np.frombuffer(raw[16:], dtype=np.uint8).reshape(count, 28, 28)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"digit_{i:04d}.png" for i in range(count)]
    for path, digit in zip(paths, digits):
        Image.fromarray(digit).save(path)
    return paths


def expected_answers(run_dir: Path, paths: list[Path]) -> list[Expected]:
    from cnnlab.evaluate.predict import predict_files
    from cnnlab.runs import load_run

    predictions = predict_files(load_run(run_dir), [str(p) for p in paths], top_k=TOP_K)
    expected = []
    for path, prediction in zip(paths, predictions):
        request = httpx.Request(
            "POST", "http://server/predict", files={"file": (path.name, path.read_bytes(), "image/png")}
        )
        headers = {"Content-Type": request.headers["Content-Type"]}
        expected.append(Expected(path.name, request.read(), headers, prediction.labels, prediction.probabilities))
    return expected


def check(answer: dict, expected: Expected) -> tuple[bool, float]:
    """(labels equal, largest probability difference) of one /predict answer against `predict_files`."""
    top = answer.get("top") or []
    labels = [entry.get("label") for entry in top]
    if labels != expected.labels:
        return False, float("inf")
    difference = max(abs(e["probability"] - p) for e, p in zip(top, expected.probabilities))
    return difference <= TOLERANCE, difference


# -- the server process --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status(pid: int, key: str) -> int:
    """A kB figure of /proc/PID/status (VmRSS: resident memory)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(run_dir: Path, flags: list[str], threads: int, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`cnnlab serve` on a free loopback port, ready (GET /health answered); stopped on leaving, always."""
    port = free_port()
    command = [sys.executable, "-m", "cnnlab", "serve", str(run_dir), "--port", str(port), "--threads", str(threads)]
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))  # a plain checkout too
    environment = {**os.environ, "PYTHONPATH": path}
    with log.open("w") as output:
        process = subprocess.Popen([*command, *flags], stdout=output, stderr=subprocess.STDOUT, env=environment)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log)
        yield url, process
    finally:
        stop(process)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}) before it was ready: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer /health within {timeout:.0f} s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mean_batch_size(url: str) -> float:
    """Mean batch the model ran, from the server's Prometheus histogram (is batching really happening?)."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in ("cnnlab_batch_size_sum", "cnnlab_batch_size_count"):
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    count = values.get("cnnlab_batch_size_count", 0.0)
    return values.get("cnnlab_batch_size_sum", 0.0) / count if count else float("nan")


# -- the clients ---------------------------------------------------------------------------------------------------


def load(url: str, answers: list[Expected], clients: int, seconds: float, requests: int, result: Round, tick=None):
    """`clients` threads, each POSTing to /predict on its own keep-alive connection until `seconds` pass or
    `requests` are sent; `tick()` is called every 10 s meanwhile (the soak's memory samples).

    Threads with the standard library's http.client and the multipart bodies built once (by httpx): measured on
    this machine, 0.3 ms of client CPU per request, against 1.2 ms for an httpx.AsyncClient per client (and ~10 ms
    for one shared AsyncClient pool of 64 connections, which scans every connection on each request): the
    load generator shares the cores with the server, so its cost is kept low and reported.
    """
    address = urlsplit(url)
    counter, lock = itertools.count(), threading.Lock()

    def one_client() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            while (n := next(counter)) < requests and time.perf_counter() < stop_at:
                expected = answers[n % len(answers)]
                sent = time.perf_counter()
                try:
                    connection.request("POST", f"/predict?top_k={TOP_K}", expected.body, expected.headers)
                    response = connection.getresponse()
                    status, raw = response.status, response.read()
                except (OSError, http.client.HTTPException) as error:
                    connection.close()  # a fresh connection for the next request
                    with lock:
                        record_error(result, f"{type(error).__name__}: {error}")
                    continue
                latency = time.perf_counter() - sent
                with lock:
                    settle(result, expected, status, raw, latency)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_client, daemon=True) for _ in range(clients)]
    start = time.perf_counter()
    stop_at, next_tick = start + seconds, start + 10
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=max(0.0, next_tick - time.perf_counter()) if tick else None)
            if tick and time.perf_counter() >= next_tick:
                tick()
                next_tick += 10
    result.elapsed = time.perf_counter() - start
    return result


def settle(result: Round, expected: Expected, status: int, raw: bytes, latency: float) -> None:
    """Count one answer: its latency, and an error (not 200) or a wrong answer (not `predict_files`')."""
    result.latencies.append(latency)
    result.requests += 1
    try:
        body = json.loads(raw)
    except ValueError:
        return record_error(result, f"HTTP {status}: not JSON: {raw[:200]!r}")
    if status != 200:
        return record_error(result, f"HTTP {status}: {body}")
    good, difference = check(body, expected)
    result.max_difference = max(result.max_difference, difference if good else 0.0)
    if not good:
        result.wrong += 1
        if len(result.examples) < 5:
            result.examples.append(f"{expected.name}: {body} != {expected.labels} {expected.probabilities}")


def record_error(result: Round, message: str) -> None:
    result.errors += 1
    if len(result.examples) < 5:
        result.examples.append(message[:300])


def measure(url: str, process: subprocess.Popen, answers: list[Expected], args, mode: str) -> Round:
    """Warm-up, then the measured window with the CPU time of the server and of this (client) process."""
    load(url, answers, args.clients, args.warmup, 10**9, Round(mode, args.clients))
    server_before, client_before = cpu_seconds(process.pid), time.process_time()
    result = load(url, answers, args.clients, args.seconds, args.requests, Round(mode, args.clients))
    result.server_cpu = (cpu_seconds(process.pid) - server_before) / result.elapsed
    result.client_cpu = (time.process_time() - client_before) / result.elapsed
    result.mean_batch = mean_batch_size(url)
    return result


MODES = {"on": "batching on", "off": "batching off (--max-batch 1)"}


def mode_flags(mode: str, args) -> list[str]:
    if mode == "on":
        return ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    return ["--max-batch", "1"]


def compare(run_dir: Path, answers: list[Expected], args, threads: int, workdir: Path) -> list[Round]:
    """Servers on, off, off, on, ... (`--repeats` each), so drift in the machine's load cancels."""
    order = [mode for i in range(args.repeats) for mode in (("on", "off") if i % 2 == 0 else ("off", "on"))]
    rounds = []
    for i, mode in enumerate(order):
        with server(run_dir, mode_flags(mode, args), threads, workdir / f"server_{i}.log") as (url, process):
            result = measure(url, process, answers, args, mode)
        rounds.append(result)
        print(
            f"  {MODES[mode]}: {result.throughput:,.0f} req/s, p50 {result.percentile(50):.1f} ms, "
            f"p99 {result.percentile(99):.1f} ms, {result.errors} errors, {result.wrong} wrong, "
            f"mean batch {result.mean_batch:.1f}, server CPU {result.server_cpu:.2f} cores, "
            f"client CPU {result.client_cpu:.2f} cores",
            flush=True,
        )
        for example in result.examples[:3]:
            print(f"    {example}", flush=True)
    return rounds


def soak(run_dir: Path, answers: list[Expected], args, threads: int, workdir: Path) -> tuple[Round, list[int]]:
    """One server (batching on) under load for `--soak` seconds; VmRSS after the warm-up, every 10 s, at the end."""
    with server(run_dir, mode_flags("on", args), threads, workdir / "server_soak.log") as (url, process):

        def sample() -> None:
            samples.append(proc_status(process.pid, "VmRSS"))

        load(url, answers, args.clients, max(args.warmup, 10), 10**9, Round("on", args.clients))
        samples = [proc_status(process.pid, "VmRSS")]
        before = cpu_seconds(process.pid)
        result = load(url, answers, args.clients, args.soak, 10**12, Round("on", args.clients), tick=sample)
        samples.append(proc_status(process.pid, "VmRSS"))
        result.server_cpu = (cpu_seconds(process.pid) - before) / result.elapsed
        result.mean_batch = mean_batch_size(url)
    return result, samples


# -- reporting -----------------------------------------------------------------------------------------------------


def row(result: Round) -> list[object]:
    return [
        MODES[result.mode],
        result.clients,
        result.requests,
        result.throughput,
        result.percentile(50),
        result.percentile(99),
        result.errors,
        result.wrong,
        f"{result.mean_batch:.1f}",
        result.server_cpu,
        result.server_ms_per_request,
        result.client_cpu,
    ]


HEADER = [
    "server",
    "clients",
    "requests",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "wrong answers",
    "mean batch",
    "server CPU (cores)",
    "server CPU ms / request",
    "client CPU (cores)",
]


def report_compare(rounds: list[Round], args, threads: int, load_before: float, model: str) -> int:
    table = markdown_table(HEADER, [row(r) for r in rounds])
    on = median([r.throughput for r in rounds if r.mode == "on"])
    off = median([r.throughput for r in rounds if r.mode == "off"])
    cost_on = median([r.server_ms_per_request for r in rounds if r.mode == "on"])
    cost_off = median([r.server_ms_per_request for r in rounds if r.mode == "off"])
    errors, wrong = sum(r.errors for r in rounds), sum(r.wrong for r in rounds)
    largest = max(r.max_difference for r in rounds)
    print(table)
    notes = [
        f"{model}, `cnnlab serve --backend torch --threads {threads}`; on = --max-batch {args.max_batch} "
        f"--max-wait-ms {args.max_wait_ms:g}, off = --max-batch 1; {args.clients} concurrent client threads "
        f"(http.client, keep-alive) POST 28x28 MNIST PNGs to /predict for {args.seconds:g} s (or {args.requests} "
        f"requests) per round after {args.warmup:g} s of warm-up; rounds {' '.join(r.mode for r in rounds)}.",
        f"Throughput on / off (medians): {on:,.0f} / {off:,.0f} req/s = {on / off:.2f}x; server CPU per request "
        f"{cost_on:.2f} ms on, {cost_off:.2f} ms off; {errors} errors, {wrong} wrong answers.",
        "The load generator shares the machine's cores with the server (its CPU is the last column).",
        f"Answers checked against predict_files (`cnnlab predict`): labels equal, probabilities within "
        f"{TOLERANCE:g} (largest difference {largest:.2e}).",
    ]
    if not args.no_record:
        title = "Serve load: dynamic batching on vs off" + (" (quick)" if args.quick else "")
        append_results(title, threads, table, notes, load_before)
    print(f"machine: {cpu_model()}, {cores()} cores; load generator on the same cores (client CPU column)")
    print(f"errors {errors}, wrong answers {wrong} (of {sum(r.requests for r in rounds)} requests)")
    print(f"server CPU per request: on {cost_on:.2f} ms, off {cost_off:.2f} ms (off / on {cost_off / cost_on:.2f})")
    print(f"dynamic batching throughput ratio at {args.clients} clients (on / off): {on / off:.2f}")
    return 1 if errors or wrong else 0


def report_soak(result: Round, samples: list[int], args, threads: int, load_before: float, model: str) -> int:
    growth = (samples[-1] - samples[0]) / 1024
    half = samples[len(samples) // 2]
    rows = [
        [
            f"{result.elapsed:.0f} s",
            result.clients,
            result.requests,
            result.throughput,
            result.percentile(50),
            result.percentile(99),
            result.errors + result.wrong,
            samples[0] / 1024,
            half / 1024,
            samples[-1] / 1024,
            max(samples) / 1024,
            growth,
        ]
    ]
    header = ["soak", "clients", "requests", "req/s", "p50 ms", "p99 ms", "errors + wrong", "RSS start MB"]
    header += ["RSS middle MB", "RSS end MB", "RSS max MB", "growth MB"]
    table = markdown_table(header, rows)
    print(table)
    notes = [
        f"{model}, batching on (--max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g}), {args.clients} "
        "clients; VmRSS of the server process after the warm-up (start), every 10 s, and at the end.",
        "RSS samples (MB): " + " ".join(f"{s / 1024:.0f}" for s in samples),
        f"Growth {growth:+.1f} MB ({growth * 1024 / samples[0]:+.1%}) start to end, "
        f"{(samples[-1] - half) / 1024:+.1f} MB over the second half; {result.errors} errors, {result.wrong} wrong.",
    ]
    if not args.no_record:
        append_results(f"Serve soak: {args.soak:g} s under load", threads, table, notes, load_before)
    print(f"machine: {cpu_model()}, {cores()} cores; load generator on the same cores")
    print(
        f"soak {result.elapsed:.0f} s: RSS {samples[0] / 1024:.1f} MB -> {samples[-1] / 1024:.1f} MB "
        f"({growth:+.1f} MB, {growth * 1024 / samples[0]:+.1%}; second half {(samples[-1] - half) / 1024:+.1f} MB)"
    )
    print(f"soak errors {result.errors}, wrong answers {result.wrong} of {result.requests} requests")
    return 1 if result.errors or result.wrong else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s per round (make bench)")
    parser.add_argument("--threads", default="auto", help="the server's torch threads")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--run", help="an existing image-classification run (default: train a LeNet-5 now)")
    parser.add_argument("--model", default="lenet5", help="the model trained when --run is not given")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, help="load per round (default 30, --quick 8)")
    parser.add_argument("--requests", type=int, default=200_000, help="at most this many requests per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measured round")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per mode, alternated: on off off on ...")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--images", type=int, default=256, help="distinct MNIST digits sent")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="soak mode: one server under load this long")
    args = parser.parse_args()
    args.seconds = args.seconds or (8.0 if args.quick else 30.0)
    if args.clients < 1 or args.seconds <= 0 or args.requests < 1 or args.repeats < 1 or args.images < 1:
        parser.error("--clients, --seconds, --requests, --repeats and --images must be positive")
    load_before = load_average()
    threads = choose_threads(args.threads)
    print(f"machine: {cpu_model()}, {cores()} cores, load average {load_before:.2f}; server threads {threads}")
    with tempfile.TemporaryDirectory(prefix="cnnlab-serve-load-") as tmp:
        workdir = Path(tmp)
        run_dir = Path(args.run) if args.run else trained_run(args.model, workdir / "run", threads)
        model = args.model if not args.run else run_dir.name
        answers = expected_answers(run_dir, digit_pngs(workdir / "digits", args.images))
        if args.soak:
            result, samples = soak(run_dir, answers, args, threads, workdir)
            sys.exit(report_soak(result, samples, args, threads, load_before, model))
        rounds = compare(run_dir, answers, args, threads, workdir)
        sys.exit(report_compare(rounds, args, threads, load_before, model))


if __name__ == "__main__":
    from cnnlab.errors import CnnlabError

    try:
        main()
    except CnnlabError as error:  # a bad --run and the like: one line, as the CLI gives it
        sys.exit(f"serve_load: error: {error}")
