"""Files a run writes, written atomically (temp file + rename), and checkpoints read back.

A kill, a full disk or Ctrl-C in the middle of a write never leaves half a file: the temp file lives beside
its target and only a complete one is renamed over it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import pickletools
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from cnnlab.errors import RunError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(handle)` on a temp file in the target's folder, fsync, then rename it over `path`.

    Raises:
        RunError: the disk is full or the folder is not writable, naming the path; no partial file is left
            (the old file, if any, is untouched).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise _write_error(path, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as error:
        # torch.save's zip writer reports a full disk as a RuntimeError; ask the file system before freeing space.
        full = not isinstance(error, (OSError, KeyboardInterrupt)) and _nearly_full(path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise _write_error(path, OSError(errno.ENOSPC, "No space left on device")) from error
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            raise _write_error(path, error) from error
        raise
    return path


def _nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < margin


TEMP_SUFFIX = ".tmp"
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENOENT}


def _write_error(path: Path, error: OSError) -> RunError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunError(f"{path}: no space left on device; nothing was written (the previous file, if any, is intact)")
    return RunError(f"{path}: cannot write ({error.strerror or error})")


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files that killed atomic writes left in `folder` (`.<name>.<random>.tmp`)."""
    removed = []
    for candidate in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if candidate.is_file() and candidate.name.count(".") >= 3:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save, atomically."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a cnnlab checkpoint with torch's weights-only unpickler, so that a file from anyone runs no code.

    Only tensors and plain values (dicts, lists, tuples, numbers, strings) are rebuilt: a pickle that names any
    other Python object is refused before that object exists (a plain pickle can call any function on load).

    Raises:
        RunError: in one line naming the file: missing, not a checkpoint, damaged or truncated, holding other
            Python objects, or without the model's weights.
    """
    path = Path(path)
    _check_checkpoint_file(path)
    try:
        with warnings.catch_warnings():  # stderr carries only the one-line error of the CLI
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise RunError(_unpickling_message(path, str(error))) from error
    except Exception as error:  # zip, storage and end-of-file errors have no common base class
        raise RunError(f"{path}: damaged or truncated checkpoint ({_first_line(error)})") from error
    _check_checkpoint_content(path, state)
    return state


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_PROTOCOL_OPCODE = 0x80  # the first byte of torch's legacy format (a pickle stream)

# What the weights-only unpickler says when a pickle names an object it will not build; group 1 names it.
UNSAFE_OBJECT_PATTERNS = (
    r"GLOBAL (\S+) was not an allowed global",
    r"unsupported GLOBAL (\S+) whose module",
    r"unrecognized function (\S+)",
    r"allowlisted via `add_safe_globals`,? but got (\S+)",
    r"(\S+) must be imported to load",
)
# Names torch's own tensors pickle through (a legacy or protocol-4 file that fails for another reason).
TORCH_OWN_NAMES = ("torch.", "collections.OrderedDict")


def _check_checkpoint_file(path: Path) -> None:
    """Refuse, naming the file, what is plainly not a torch checkpoint, before torch reads any of it."""
    if not path.exists():
        raise RunError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise RunError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise RunError(f"{path}: not a regular file, so not a checkpoint")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as error:
        raise RunError(f"{path}: cannot read the checkpoint ({error.strerror})") from error
    if not head:
        raise RunError(f"{path}: empty file (0 bytes), not a checkpoint")
    if head == ZIP_MAGIC:
        _check_torch_zip(path)
    elif head[0] != PICKLE_PROTOCOL_OPCODE:
        raise RunError(f"{path}: not a PyTorch checkpoint (it starts with {head!r})")


def _check_torch_zip(path: Path) -> None:
    """A torch.save zip holds `<folder>/data.pkl`; TorchScript (what `export` writes) adds `constants.pkl`."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name.rsplit("/", 1)[-1] for name in archive.namelist()]
            if "data.pkl" in names and "constants.pkl" not in names:
                _verify_records(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise RunError(f"{path}: damaged or truncated checkpoint ({error})") from error
    if "constants.pkl" in names:
        raise RunError(f"{path}: a TorchScript model (as `cnnlab export` writes), not a training checkpoint")
    if "data.pkl" not in names:
        raise RunError(f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl in it)")


def _verify_records(archive: zipfile.ZipFile) -> None:
    """Check every record's CRC-32: torch.load does not, and loads flipped bytes as silently wrong weights.

    Reading the file once more costs about what the load does (100 MB: 0.07 s on a 2-core machine).
    """
    for info in archive.infolist():
        if info.CRC == 0 and info.file_size:  # written with torch.serialization.set_crc32_options(False)
            continue
        with archive.open(info) as record:  # zipfile raises BadZipFile at the end of a record with a bad CRC
            while record.read(1 << 24):
                pass


def _unpickling_message(path: Path, message: str) -> str:
    """One line for a pickle the weights-only unpickler stopped in: an object it refuses, or broken data."""
    matches = (re.search(pattern, message) for pattern in UNSAFE_OBJECT_PATTERNS)
    found = next((match[1].rstrip(".,") for match in matches if match), None)
    if found is None and "Unsupported operand" in message:  # e.g. protocol 4's FRAME: read the names ourselves
        found = _foreign_object_name(path)
    if found is None:
        return f"{path}: damaged or truncated checkpoint (its pickle data is unreadable)"
    return (
        f"{path}: refuses to load: the file holds Python objects other than tensors (possibly unsafe); "
        f"found {found}; cnnlab loads only tensors and plain values. A checkpoint of an older cnnlab is "
        "refused too: if you trust its source, convert it once with cnnlab.io.resave_trusted_checkpoint(path)"
    )


def _foreign_object_name(path: Path) -> str | None:
    """The first object outside torch that the file's pickle names, read with pickletools: nothing runs."""
    try:
        stream = _pickle_stream(path)
        for _ in range(4):  # torch's legacy format is several pickles in a row
            memo: dict[int, Any] = {}
            recent: list[Any] = []
            for opcode, arg, _position in pickletools.genops(stream):
                name = None
                if opcode.name in ("GLOBAL", "INST"):
                    name = str(arg).replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL":
                    name = ".".join(map(str, recent[-2:]))
                if name and not name.startswith(TORCH_OWN_NAMES):
                    return name
                if opcode.name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = recent[-1] if recent else None
                elif opcode.name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(arg))
                else:
                    recent.append(arg if "UNICODE" in opcode.name else None)
    except Exception:  # garbage, or the raw tensor bytes after the last pickle: nothing more to name
        return None
    return None


def _pickle_stream(path: Path) -> IO[bytes]:
    """The checkpoint's pickle bytes: data.pkl of a zip checkpoint, else the whole file."""
    with path.open("rb") as handle:
        if handle.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            handle.seek(0)
            return io.BytesIO(handle.read())
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl")
        return io.BytesIO(archive.read(name))


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _check_checkpoint_content(path: Path, state: Any) -> None:
    """What every cnnlab checkpoint holds: a dict with the model's tensors under "model"."""
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        found = _describe(state)
        raise RunError(f"{path}: not a cnnlab checkpoint (expected the model's weights under 'model', found {found})")
    odd = next((value for value in state["model"].values() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        kind = type(odd).__name__
        raise RunError(f"{path}: not a cnnlab checkpoint (its 'model' weights hold a {kind}, not tensors)")


def _describe(value: Any, shown: int = 4) -> str:
    if not isinstance(value, dict):
        return f"a {type(value).__name__}"
    keys = [str(key) for key in list(value)[:shown]]
    more = ", ..." if len(value) > shown else ""
    return f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"


def plain_values(value: Any) -> Any:
    """`value` with numpy arrays and scalars turned into lists and numbers, which weights-only loading accepts.

    Containers are rebuilt, not changed in place; an OrderedDict keeps its `_metadata` (state_dict versions).
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, OrderedDict):
        converted = OrderedDict((key, plain_values(item)) for key, item in value.items())
        if hasattr(value, "_metadata"):
            converted._metadata = value._metadata  # type: ignore[attr-defined]
        return converted
    if isinstance(value, dict):
        return {key: plain_values(item) for key, item in value.items()}
    if isinstance(value, torch.Size):
        return value
    if isinstance(value, (list, tuple)):
        items = [plain_values(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items  # a namedtuple becomes a plain tuple
    return value


def resave_trusted_checkpoint(path: str | Path) -> Path:
    """Rewrite a checkpoint of an older cnnlab (numpy values inside) so that `load_checkpoint` reads it.

    This reads the file with full pickle, which runs whatever code the file names: call it only on a file
    whose source you trust.
    """
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    return atomic_save(plain_values(state), path)
