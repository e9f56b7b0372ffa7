"""Framing between the GUI side and the engine host process.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON (one object).
What the objects mean is in `messages.py`. Media never travels inline: messages carry file paths.
Both sides read frames with the same `FrameReader`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

_HEADER = struct.Struct(">I")
# Built once: json.dumps with options builds a new encoder at every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a message (or went away mid-message)."""


def encode(message: dict[str, Any]) -> bytes:
    """Frame one message."""
    body = _ENCODER.encode(message).encode("utf-8")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Incremental frame decoder: feed it bytes as they arrive, take whole messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Messages completed by `chunk` (possibly none)."""
        self._buffer.extend(chunk)
        messages = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > MAX_MESSAGE:
                raise ProtocolError(f"message of {length} bytes is too large")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            try:
                message = json.loads(bytes(self._buffer[_HEADER.size : end]).decode("utf-8"))
            except ValueError as exc:
                raise ProtocolError(f"message is not JSON: {exc}") from exc
            del self._buffer[:end]
            if not isinstance(message, dict):
                raise ProtocolError("message is not an object")
            messages.append(message)
        return messages

    def at_boundary(self) -> bool:
        """No partial message is buffered (an end of stream here is clean)."""
        return not self._buffer

    def clear(self) -> None:
        self._buffer.clear()


def read_messages(read: Callable[[int], bytes]) -> Iterator[dict[str, Any]]:
    """Every message from a blocking byte source until its clean end."""
    reader = FrameReader()
    while True:
        chunk = read(1 << 16)
        if not chunk:
            if not reader.at_boundary():
                raise ProtocolError("stream ended inside a message")
            return
        yield from reader.feed(chunk)
