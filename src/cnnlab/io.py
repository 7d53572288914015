"""Files a run writes, written atomically (temp file + rename), and checkpoints read back.

A kill, a full disk or Ctrl-C in the middle of a write never leaves half a file: the temp file lives beside
its target and only a complete one is renamed over it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from cnnlab.errors import RunError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(handle)` on a temp file in the target's folder, fsync, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save, atomically."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # a truncated or foreign file
        raise RunError(f"{path}: not a readable cnnlab checkpoint ({error})") from error
