"""Bad-input cases: `cnnlab serve` refuses a wrong flag, a missing run or a busy port in one line, before
anything listens."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.badinput.cases import Case

_HELD: list[socket.socket] = []


def _busy_port(tmp: Path) -> None:
    """Listen on 127.0.0.1:18763 for the rest of the session, so the case meets a port in use."""
    if not _HELD:
        held = socket.socket()
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 18763))
        held.listen()
        _HELD.append(held)


def serve(*extra: str) -> list[str]:
    return ["serve", "{run}", "--port", "18762", *extra]


CASES = [
    Case("serve/run folder missing", ["serve", "{tmp}/nowhere", "--port", "18762"], "run folder not found"),
    Case("serve/max batch zero", serve("--max-batch", "0"), "--max-batch must be a whole number >= 1", needs_run=True),
    Case("serve/negative wait", serve("--max-wait-ms", "-1"), "--max-wait-ms must be in [0, 1000]", needs_run=True),
    Case("serve/zero timeout", serve("--timeout", "0"), "--timeout must be in (0, 3600]", needs_run=True),
    Case("serve/zero workers", serve("--workers", "0"), "--workers must be >= 1", needs_run=True),
    Case(
        "serve/upload limit zero", serve("--max-upload-mb", "0"), "--max-upload-mb must be in (0, 4096]", needs_run=True
    ),
    Case("serve/port out of range", serve("--port", "70000"), "--port must be in [0, 65535]", needs_run=True),
    Case(
        "serve/port in use",
        ["serve", "{run}", "--port", "18763"],
        "port 18763 on 127.0.0.1 is in use; choose another with --port",
        setup=_busy_port,
        needs_run=True,
    ),
    Case("serve/unknown host", serve("--host", "203.0.113.77"), "cannot listen on 203.0.113.77:18762", needs_run=True),
    Case("serve/gallery on a classification run", serve("--gallery", "{tmp}/g.sqlite"), "gallery", needs_run=True),
]
