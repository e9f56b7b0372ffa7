"""The engine host: a child process that owns the model and answers the GUI over a pipe.

Started as `<sys.executable> main.py --engine-host` (or the frozen binary with `--engine-host`).
A native crash in llama.cpp kills only this process; ending it gives all GPU memory back.
stdin carries requests, the original stdout carries events, and fd 1 is pointed at stderr so
that nothing printed by a library can corrupt the protocol.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from dataclasses import asdict
from typing import Any, BinaryIO

from app.core.engine.protocol import ProtocolError, read_message, write_message


class _Output:
    """Thread-safe event writer."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            write_message(self._stream, message)


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (ours or a library's) go to the log, not into the protocol
    sys.stdout = sys.stderr
    return os.fdopen(0, "rb", buffering=0), os.fdopen(out_fd, "wb", buffering=0)


def run_host() -> int:
    """Entry point of the engine host process."""
    requests_in, events_out = _protocol_streams()
    out = _Output(events_out)
    from app.core.engine.llama_engine import LlamaEngine
    from app.core.engine.session import EngineSession

    engine = LlamaEngine()
    session = EngineSession(engine)
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def reader() -> None:
        # Stop must not wait behind the generation it is meant to stop: set the flag right here.
        try:
            while True:
                msg = read_message(requests_in)
                if msg is None:
                    break
                if msg.get("op") == "stop":
                    engine.stop_event.set()
                elif msg.get("op") == "ping":
                    out.send({"ev": "pong"})
                else:
                    jobs.put(msg)
        except (ProtocolError, OSError, ValueError):
            pass
        engine.stop_event.set()  # the GUI went away: finish quickly
        jobs.put(None)

    threading.Thread(target=reader, name="engine-host-reader", daemon=True).start()
    out.send({"ev": "ready", "pid": os.getpid()})
    while True:
        msg = jobs.get()
        if msg is None or msg.get("op") == "shutdown":
            break
        try:
            _handle(msg, session, out)
        except Exception as exc:  # noqa: BLE001 - report everything, keep serving
            traceback.print_exc()
            out.send({"ev": "error", "id": msg.get("id"), "kind": "internal", "message": str(exc)})
    engine.close()
    return 0


def _handle(msg: dict[str, Any], session: Any, out: _Output) -> None:
    from app.core.engine.records import EngineError

    op = msg.get("op")
    req_id = msg.get("id")
    try:
        if op == "load":
            info = session.load(msg, on_progress=lambda f: out.send({"ev": "progress", "fraction": f}))
            out.send({"ev": "loaded", "info": asdict(info)})
        elif op == "generate":
            stats = session.generate(msg, on_piece=lambda t: out.send({"ev": "piece", "id": req_id, "text": t}))
            out.send({"ev": "done", "id": req_id, "stats": asdict(stats)})
        elif op == "count_tokens":
            out.send({"ev": "tokens", "id": req_id, "count": session.count_tokens(msg)})
        else:
            out.send({"ev": "error", "id": req_id, "kind": "input", "message": f"unknown request {op!r}"})
    except EngineError as exc:
        out.send({"ev": "error", "id": req_id, "kind": exc.kind, "message": exc.message, "op": op})
