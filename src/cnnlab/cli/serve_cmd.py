"""`cnnlab serve RUN [--host 127.0.0.1] [--port 8000] [--backend torch|onnx] [--workers N] [--gallery FILE] ...`.

Loads the run through its task (no training code), checks the port is free, then runs uvicorn. With `--workers N`
each worker process loads the model itself (an ONNX export is written once, before they start).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
from pathlib import Path

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.serve.settings import MEGABYTE, ServeSettings

ENVIRONMENT = "CNNLAB_SERVE_CONFIG"
SERVE_PACKAGES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by a train command (any task)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"], help="eager PyTorch or ONNX Runtime")
    parser.add_argument("--workers", type=int, default=1, help="server processes (each loads the model)")
    parser.add_argument("--gallery", metavar="FILE", help="faces runs: the gallery (SQLite) to identify against")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--threads", type=int, help="torch / ONNX Runtime threads per worker (default: torch's)")
    defaults = ServeSettings()
    group = parser.add_argument_group("batching and limits")
    group.add_argument("--top-k", type=int, default=defaults.top_k, help="labels per answer when a request names none")
    group.add_argument("--max-batch", type=int, default=defaults.max_batch, help="largest batch; 1 = no batching")
    group.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms, help="how long a batch waits to fill")
    group.add_argument(
        "--max-upload-mb", type=float, default=defaults.max_upload_bytes / MEGABYTE, help="largest request body"
    )
    group.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="largest image (width x height)")
    group.add_argument("--timeout", type=float, default=defaults.timeout_s, help="seconds until a request gets 504")
    group.add_argument("--max-batch-items", type=int, default=defaults.max_batch_items, help="items per /predict/batch")


def settings_from(args: argparse.Namespace) -> ServeSettings:
    if not 0 < args.max_upload_mb <= 4096:
        raise ConfigError(f"--max-upload-mb must be in (0, 4096], got {args.max_upload_mb}")
    return ServeSettings(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_upload_bytes=int(args.max_upload_mb * MEGABYTE),
        max_pixels=args.max_pixels,
        timeout_s=args.timeout,
        max_batch_items=args.max_batch_items,
        top_k=args.top_k,
    )


def check_port(host: str, port: int) -> None:
    """A port in use or an address not on this machine is one line now, not a uvicorn log after loading."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CnnlabError(f"port {port} on {host} is in use; choose another with --port") from None
            raise CnnlabError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None


def check_gallery(run_dir: str, gallery: str | None) -> None:
    """--gallery belongs to faces runs; given to another task it would be silently ignored."""
    from cnnlab.runs import read_run_meta

    task = (read_run_meta(Path(run_dir)).get("task") or {}).get("name", "classification")
    if gallery is not None and task != "faces":
        raise ConfigError(f"--gallery: {run_dir} is a {task} run; a gallery goes with a faces run")


def load(config: dict):
    """The adapter for a config dict (also what each worker process does)."""
    from cnnlab.serve.adapters import load_adapter

    check_gallery(config["run"], config.get("gallery"))
    if config.get("threads"):
        import torch

        torch.set_num_threads(config["threads"])
    return load_adapter(
        config["run"],
        config["backend"],
        gallery=config.get("gallery"),
        top_k=config["settings"]["top_k"],
        max_pixels=config["settings"]["max_pixels"],
        max_text_chars=config["settings"]["max_text_chars"],
        threads=config.get("threads"),
        checkpoint=config.get("checkpoint", "best"),
    )


def app_from_environment():
    """uvicorn's factory in each worker process: the config the parent put in the environment."""
    from cnnlab.serve.app import create_app

    config = json.loads(os.environ[ENVIRONMENT])
    return create_app(load(config), ServeSettings(**config["settings"]))


def require_serve_extra() -> None:
    """fastapi, uvicorn and friends come with the `serve` extra: a missing one is one line saying how to install."""
    import importlib

    for module, package in SERVE_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise CnnlabError(
                f"cnnlab serve needs the {package} package; install it with: pip install 'cnnlab[serve]'"
            ) from None


def run(args: argparse.Namespace) -> int:
    require_serve_extra()
    import uvicorn

    settings = settings_from(args)
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    check_port(args.host, args.port)
    threads = args.threads
    if threads is None and args.workers > 1:  # N processes x all cores each would oversubscribe the CPU
        threads = max(1, (os.cpu_count() or 1) // args.workers)
    config = {
        "run": args.run,
        "backend": args.backend,
        "gallery": args.gallery,
        "threads": threads,
        "checkpoint": args.checkpoint,
        "settings": settings.to_dict(),
    }
    adapter = load(config)  # fails here, in one line, before any worker starts; writes the ONNX cache once
    meta = adapter.metadata()
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    announce = (
        f"serving {args.run} ({meta.get('task')}, {meta.get('model')}, {meta.get('backend')}{workers}) "
        f"on http://{args.host}:{args.port}"
    )
    log = {"log_level": "warning", "timeout_keep_alive": 5}
    if args.workers == 1:
        from cnnlab.serve.app import create_app

        os.environ["CNNLAB_SERVE_ANNOUNCE"] = announce
        uvicorn.run(create_app(adapter, settings), host=args.host, port=args.port, **log)
    else:
        del adapter
        os.environ[ENVIRONMENT] = json.dumps(config)
        print(announce, flush=True)
        uvicorn.run(
            "cnnlab.cli.serve_cmd:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **log,
        )
    return 0
