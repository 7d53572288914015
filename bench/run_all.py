"""Every bench script in turn (the quick set by default: `make bench`), then every ratio they printed.

    python bench/run_all.py                      # quick versions, about 7-9 minutes on 2 cores
    python bench/run_all.py --full               # the long versions (about 30-40 minutes)
    python bench/run_all.py --only overhead,peers
    python bench/run_all.py --cifar10 PATH       # also ResNet-20 on CIFAR-10 (time_to_accuracy)

Each script runs in its own process, appends its section to bench/RESULTS.md and ends with its summary lines
(the lines after its last table); this script prints those lines together at the end. The thread count is
chosen once here (`auto`: idle cores at the start) and passed to every script, so all of them use the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from benchlib import BENCH_DIR, REPO, choose_threads, load_average

SCRIPTS = [
    "overhead",
    "peers",
    "hardware",
    "time_to_accuracy",
    "datapath",
    "inference",
    "profile_fit",
    "text_steps",
    "serve_load",
]


def summary_lines(output: str) -> list[str]:
    lines = output.rstrip().splitlines()
    last_table = max((i for i, line in enumerate(lines) if line.startswith("|")), default=-1)
    return [line for line in lines[last_table + 1 :] if line.strip()]


def run_streaming(command: list[str]) -> subprocess.CompletedProcess:
    """Run `command`, echoing its stdout line by line as it comes; stderr goes to a file (no pipe to fill)."""
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True) as process:
            lines = []
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
        errors.seek(0)
        return subprocess.CompletedProcess(command, process.returncode, "".join(lines), errors.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the long versions instead of --quick")
    parser.add_argument("--only", default="", help="comma-separated script names: " + ",".join(SCRIPTS))
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--cifar10", help="CIFAR-10 JPEG folder for time_to_accuracy's ResNet-20 run")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    threads = choose_threads(args.threads)
    chosen = [s for s in SCRIPTS if not args.only or s in args.only.split(",")]
    print(f"threads {threads} (load average {load_average():.2f}); scripts: {', '.join(chosen)}", flush=True)
    summaries: dict[str, list[str]] = {}
    began = time.perf_counter()
    for name in chosen:
        command = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--threads", str(threads)]
        command += [] if args.full else ["--quick"]
        command += ["--no-record"] if args.no_record else []
        if name == "time_to_accuracy" and args.cifar10:
            command += ["--cifar10", args.cifar10]
        start = time.perf_counter()
        print(f"\n== {name} ==", flush=True)
        output = run_streaming(command)
        if output.returncode != 0:
            summaries[name] = [f"FAILED (exit {output.returncode}): {output.stderr.strip().splitlines()[-1:]}"]
            print(output.stderr[-3000:], file=sys.stderr)
        else:
            summaries[name] = summary_lines(output.stdout)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\n== every ratio ({time.perf_counter() - began:.0f} s in all) ==")
    for name, lines in summaries.items():
        for line in lines:
            print(f"{name}: {line}")
    if any(lines and lines[0].startswith("FAILED") for lines in summaries.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
