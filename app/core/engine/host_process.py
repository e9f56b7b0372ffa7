"""The GUI side's handle on the engine host process (no Qt: the CLI, tests and benchmarks use it too)."""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from app.core.engine.messages import Event, Request, Shutdown, event_from_wire, to_wire
from app.core.engine.protocol import FrameReader, ProtocolError, encode

EXIT_WAIT_S = 5.0  # how long a host asked to exit may take before it is killed


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
        self._close_lock = threading.Lock()
        self._frames = FrameReader()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=60)
        self._stderr_thread: threading.Thread | None = None
        self.expected_exit = False

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start a fresh host process."""
        self.expected_exit = False
        self._frames.clear()
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

    def stop(self, timeout: float = EXIT_WAIT_S) -> None:
        """Ask the host to exit and wait until it has; for callers that read events themselves."""
        self.request_exit()
        self._finish(timeout)
        self.close_output()

    def stop_in_background(self) -> threading.Thread | None:
        """Ask the host to exit and return at once; a thread waits (and kills if it must).

        The output pipe stays open for whoever reads events: they see its end, then call reap().
        """
        if self.proc is None:
            return None
        self.request_exit()
        reaper = threading.Thread(target=self._finish, args=(EXIT_WAIT_S,), name="engine-host-reaper",
                                  daemon=True)
        reaper.start()
        return reaper

    def request_exit(self) -> None:
        """Tell the host to end (its current work is abandoned); returns at once."""
        proc = self.proc
        self.expected_exit = True
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.send(Shutdown())
        self._close_input()  # EOF: the host's reader sets every stop flag at once

    def _close_input(self) -> None:
        proc = self.proc
        with self._write_lock:
            try:
                if proc is not None and proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass

    def _finish(self, timeout: float) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_input()

    def kill(self) -> None:
        """Hard kill (tests use it to simulate a native crash)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def close_output(self) -> None:
        """Close the event pipe and collect stderr; only the reader of events may call this."""
        proc = self.proc
        if proc is None:
            return
        thread = self._stderr_thread
        if thread is not None:
            thread.join(timeout=EXIT_WAIT_S)  # the process is gone, so stderr ends at once
        for stream in (proc.stdout, proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def reap(self) -> None:
        """After the host's output ended: wait for it and collect its last words."""
        self._finish(EXIT_WAIT_S)
        self.close_output()

    # ----- I/O -----------------------------------------------------------------------------

    def send(self, request: Request) -> None:
        """Write one request; safe from any thread (Stop is written straight from the GUI thread)."""
        proc = self.proc
        data = encode(to_wire(request))
        with self._write_lock:
            if proc is None or proc.stdin is None or proc.stdin.closed:
                raise BrokenPipeError("engine host is not running")
            proc.stdin.write(data)
            proc.stdin.flush()

    def read_events(self, timeout: float | None) -> list[Event] | None:
        """Events that arrive within `timeout` seconds (None: until some do; [] if none); None once
        the host's output ended."""
        fd = self.output_fd()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return []
        return self.read_now()

    def output_fd(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def read_now(self) -> list[Event] | None:
        """The events of one read of the output (it must be readable, or this blocks); None once
        the host's output ended."""
        chunk = os.read(self.output_fd(), 1 << 16)
        if not chunk:
            if not self._frames.at_boundary():
                raise ProtocolError("engine host output ended inside a message")
            return None
        return [event_from_wire(raw) for raw in self._frames.feed(chunk)]

    def wait_for(self, kind: type, timeout: float = 120.0) -> Event:
        """Block until an event of type `kind` (or a Failed) arrives; for the CLI, tests and benchmarks."""
        from app.core.engine.messages import Failed

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.read_events(0.1)
            if events is None:
                raise ProtocolError("engine host exited: " + self.stderr_tail(5))
            for e in events:
                if isinstance(e, (kind, Failed)):
                    return e
        raise TimeoutError(f"no {kind.__name__} from the engine host within {timeout:.0f} s")

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
