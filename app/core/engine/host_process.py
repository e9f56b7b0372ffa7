"""The GUI side's handle on the engine host process (no Qt: the CLI, tests and benchmarks use it too)."""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.core.engine.protocol import MAX_MESSAGE, ProtocolError, encode

_HEADER = struct.Struct(">I")


def host_command() -> list[str]:
    """How to start the engine host: the same executable with an engine flag (works frozen too)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--engine-host"]
    main_py = Path(__file__).resolve().parents[3] / "main.py"
    return [sys.executable, str(main_py), "--engine-host"]


class HostProcess:
    """Starts the host, sends requests, reads events; keeps the tail of its stderr for crash reports."""

    def __init__(self, command: list[str] | None = None, log_path: Path | None = None) -> None:
        self.command = command or host_command()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_lock = threading.Lock()
        self._buffer = bytearray()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self._stderr_thread: threading.Thread | None = None
        self.expected_exit = False

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start a fresh host process."""
        self.expected_exit = False
        self._buffer.clear()
        self._stderr_tail.clear()
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, args=(self.proc,), name="engine-host-stderr", daemon=True
        )
        self._stderr_thread.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the host to exit, then make sure it has; all its memory goes back to the system."""
        proc = self.proc
        if proc is None:
            return
        self.expected_exit = True
        if proc.poll() is None:
            try:
                self.send({"op": "stop"})
                self.send({"op": "shutdown"})
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        """Hard kill (tests use it to simulate a native crash)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def _close_pipes(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
            self._stderr_thread = None
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def reap(self) -> None:
        """After the host died on its own: wait for it and collect its last words."""
        if self.proc is not None:
            self.proc.wait()
            self._close_pipes()

    # ----- I/O -----------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        """Write one request; safe from any thread (Stop is written straight from the GUI thread)."""
        if self.proc is None or self.proc.stdin is None:
            raise BrokenPipeError("engine host is not running")
        data = encode(message)
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def read_events(self, timeout: float) -> list[dict[str, Any]] | None:
        """Events that arrive within `timeout` seconds ([] if none); None once the host's output ended."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buffer.extend(chunk)
        return self._parse()

    def _parse(self) -> list[dict[str, Any]]:
        events = []
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > MAX_MESSAGE:
                raise ProtocolError("engine host sent an oversized message")
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            events.append(json.loads(bytes(self._buffer[_HEADER.size : end]).decode("utf-8")))
            del self._buffer[:end]
        return events

    def wait_for(self, ev: str, timeout: float = 120.0) -> dict[str, Any]:
        """Block until an event of kind `ev` (or an error) arrives; for the CLI and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.read_events(0.1)
            if events is None:
                raise ProtocolError("engine host exited: " + self.stderr_tail(5))
            for e in events:
                if e.get("ev") in (ev, "error"):
                    return e
        raise TimeoutError(f"no {ev!r} from the engine host within {timeout:.0f} s")

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        log = None
        if self.log_path is not None:
            try:
                log = self.log_path.open("ab")
            except OSError:
                log = None
        assert proc.stderr is not None
        try:
            for raw in iter(proc.stderr.readline, b""):
                if log:
                    log.write(raw)
                self._stderr_tail.append(raw.decode("utf-8", errors="replace").rstrip())
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()

    def stderr_tail(self, n: int = 12) -> str:
        """The last lines the host wrote to stderr (shown when it crashes)."""
        return "\n".join(list(self._stderr_tail)[-n:])
