"""The server's limits and batching knobs, checked once where they are given (flags or the API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cnnlab.errors import ConfigError

MEGABYTE = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    """What one server process allows and how it batches.

    Attributes:
        max_batch: requests run through the model together at most; 1 turns dynamic batching off.
        max_wait_ms: how long the first request of a batch waits for others to join it.
        max_upload_bytes: a request body over this gets 413 before it is read in full.
        max_pixels: an image whose header declares more pixels gets 413 before it is decoded (decompression bombs).
        timeout_s: a request not answered by then gets 504 (queueing and inference together).
        max_batch_items: items one /predict/batch request may carry.
        max_queue: items waiting for the model before new ones get 503 (back-pressure, not unbounded memory).
        max_text_chars: longest sentence a text run accepts.
        top_k: labels per answer when a request names none.
    """

    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_upload_bytes: int = 10 * MEGABYTE
    max_pixels: int = 40_000_000
    timeout_s: float = 10.0
    max_batch_items: int = 64
    max_queue: int = 2048
    max_text_chars: int = 100_000
    top_k: int = 5

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_upload_bytes", "max_pixels", "max_batch_items", "max_queue", "max_text_chars"):
            _check_whole(name, getattr(self, name))
        _check_whole("top_k", self.top_k)
        if not 0 <= self.max_wait_ms <= 1000:
            raise ConfigError(f"--max-wait-ms must be in [0, 1000] milliseconds, got {self.max_wait_ms!r}")
        if not 0 < self.timeout_s <= 3600:
            raise ConfigError(f"--timeout must be in (0, 3600] seconds, got {self.timeout_s!r}")

    def limits(self) -> dict[str, Any]:
        """The limits a client may want to know (GET /metadata)."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_pixels": self.max_pixels,
            "timeout_s": self.timeout_s,
            "max_batch_items": self.max_batch_items,
            "max_text_chars": self.max_text_chars,
        }

    def batching(self) -> dict[str, Any]:
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_ms, "dynamic": self.max_batch > 1}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_whole(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} must be a whole number >= 1, got {value!r}")
