"""Request bodies as form parts, parsed in memory with python-multipart's streaming parser.

The body is already capped (`max_upload_bytes`) and read whole, so parts are plain bytes: no spooled temporary
files and no thread hop per file, which Starlette's form parsing costs (measured about a third of the server's
time per small upload). Malformed or unfinished forms are one-line `FormError`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header


class FormError(ValueError):
    """A form body that cannot be read (the message says why)."""


class TooManyParts(FormError):
    """More parts than the request may carry."""


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None  # set for a file upload, None for a text field

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def parse_multipart(body: bytes, content_type: str, max_parts: int) -> list[Part]:
    """The parts of a multipart/form-data body, in order."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise FormError("the multipart content type names no boundary")
    parts: list[Part] = []
    state = {"field": bytearray(), "value": bytearray(), "headers": {}, "data": [], "ended": False}

    def header_end() -> None:
        state["headers"][bytes(state["field"]).strip().lower()] = bytes(state["value"]).strip()
        state["field"], state["value"] = bytearray(), bytearray()

    def part_end() -> None:
        if len(parts) >= max_parts:
            raise TooManyParts(f"more than {max_parts} parts")
        parts.append(_part(state["headers"], b"".join(state["data"])))
        state["headers"], state["data"] = {}, []

    callbacks = {
        "on_header_field": lambda data, start, end: state["field"].extend(data[start:end]),
        "on_header_value": lambda data, start, end: state["value"].extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: state["data"].append(bytes(data[start:end])),
        "on_part_end": part_end,
        "on_end": lambda: state.update(ended=True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise FormError(str(error).splitlines()[0] if str(error) else "malformed multipart body") from None
    if not state["ended"]:
        raise FormError("the multipart body ends before its closing boundary")
    return parts


def _part(headers: dict[bytes, bytes], data: bytes) -> Part:
    disposition = headers.get(b"content-disposition")
    if disposition is None:
        raise FormError("a part has no Content-Disposition header")
    _, params = parse_options_header(disposition)
    name = params.get(b"name", b"").decode("utf-8", errors="replace")
    filename = params.get(b"filename")
    return Part(name, data, None if filename is None else filename.decode("utf-8", errors="replace"))


def parse_urlencoded(body: bytes, max_parts: int) -> list[Part]:
    """The fields of an application/x-www-form-urlencoded body (text only)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_parts)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormError(str(error)) from None
    return [Part(name, value.encode("utf-8")) for name, value in pairs]
