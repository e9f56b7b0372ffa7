"""Wire format between the GUI side and the engine host process.

Each message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
Media never travels inline: messages carry file paths (images, WAV clips).

Requests (client -> host), each a dict with "op":
  load      {path, mmproj?, n_ctx, n_gpu_layers, n_threads?, seed?}
  generate  {id, messages, enable_thinking, params{temperature, top_p, top_k, min_p,
             repeat_penalty, max_tokens, seed, grammar?}}
  stop      {}            handled by the host's reader thread at once (a flag, not a queue)
  ping      {}
  shutdown  {}

Events (host -> client), each a dict with "ev":
  ready     {pid}                                   host started, before any load
  progress  {fraction}                              while loading
  loaded    {info{...}}                             model ready
  piece     {id, text}                              raw generated text (the client splits/coalesces)
  done      {id, stats{prompt_tokens, completion_tokens, cached_tokens, ttft_ms, decode_tok_s,
             n_past, n_ctx, stopped, finish_reason}}
  error     {id?, kind, message}                    kind: load|context|input|internal
  pong      {}
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The other side sent something that is not a message (or went away mid-message)."""


def encode(message: dict[str, Any]) -> bytes:
    """Frame one message."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    """Write and flush one framed message."""
    stream.write(encode(message))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if remaining == n:
                return None
            raise ProtocolError("stream ended inside a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """Read one message; None at a clean end of stream."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ProtocolError(f"message of {length} bytes is too large")
    body = _read_exact(stream, length)
    if body is None:
        raise ProtocolError("stream ended after a header")
    message = json.loads(body.decode("utf-8"))
    if not isinstance(message, dict):
        raise ProtocolError("message is not an object")
    return message
