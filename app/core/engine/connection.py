"""A Qt-free client of one engine host: requests by id, events matched to them on a reader thread.

The window (through `services.engine_client`), the CLI, the API server and the benchmarks all talk
to the engine through this class. Every request gets a fresh id; raw text of each generation is
split into thinking and answer by its own `StreamAssembler`, and what one read of the host's output
brings reaches the listener as one `Deltas` (the host already sends an answer's text in ~50 ms
batches, so this is not once per token). A request may name a listener of its own
(the API server sharing the window's host): its events go there instead of to the connection's
listener, and `Exited` reaches both. Events for ids this connection does not
know (a request already finished or never made) are dropped, so nothing of a stopped answer can
land in the next one.

The listener runs on the reader thread; it must hand events over, not do slow work. An owner with
an event loop of its own (the window) may read instead: `start(reader=False)`, then `read_ready()`
whenever `output_fd` is readable, so each host message wakes one thread instead of two; the
listener then runs on the owner's thread, and after `close()` (or the host's end) a reader thread
takes over to deliver the last events and `Exited`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.engine.host_process import HostProcess
from app.core.engine.messages import (
    CountTokens,
    Done,
    Event,
    Failed,
    Generate,
    LoadModel,
    Piece,
    Stop,
    TokenCount,
    Tokenize,
    TokenList,
)
from app.core.engine.protocol import ProtocolError
from app.core.engine.records import SamplingParams
from app.core.engine.stream import StreamAssembler

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Deltas:
    """New text of generation `id`: (kind, text) pairs, kind "thinking" | "answer"."""

    id: int
    pieces: list[tuple[str, str]]


@dataclass(frozen=True)
class Exited:
    """The host process ended (asked to, or not: see `EngineConnection.expected_exit`)."""

    code: int
    stderr_tail: str


ClientEvent = Event | Deltas | Exited
Listener = Callable[[ClientEvent], None]


class EngineConnection:
    """One engine host process and the thread (or the owner's event loop) that reads its events."""

    def __init__(self, listener: Listener, command: list[str] | None = None,
                 log_path: Path | None = None) -> None:
        self._listener = listener
        self._host = HostProcess(command, log_path=log_path)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._streams: dict[int, StreamAssembler] = {}  # generations still running, by id
        self._others: set[int] = set()  # token counts and lists still to be answered
        self._routes: dict[int, Listener] = {}  # requests whose events go to a listener of their own
        self._reader: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._owner_reads = False  # start(reader=False): read_ready() until a thread takes over
        self._in_read = False  # inside read_ready(): a close() there hands over once it returns

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self, *, reader: bool = True) -> None:
        """Start the host; with reader=False the caller reads through `read_ready()`."""
        self._host.start()
        self._owner_reads = not reader
        if reader:
            self._start_reader()

    def _start_reader(self, work: Callable[[], None] | None = None) -> None:
        """A thread reads from here on (or, with `work`, only does that: the end of reading)."""
        self._owner_reads = False
        self._reader = threading.Thread(target=self._read, args=(work or self._pump,),
                                        name="engine-events", daemon=True)
        self._reader.start()

    @property
    def output_fd(self) -> int:
        """The host's event pipe, for an owner that reads (`start(reader=False)`)."""
        return self._host.output_fd()

    @property
    def pid(self) -> int | None:
        return self._host.pid

    def alive(self) -> bool:
        return self._host.alive()

    @property
    def expected_exit(self) -> bool:
        return self._host.expected_exit

    def stderr_tail(self, n: int = 12) -> str:
        return self._host.stderr_tail(n)

    def close(self) -> None:
        """End the host without waiting: its reaper and this reader finish in the background.

        An owner that reads stops watching `output_fd` first: a thread reads from here on."""
        self._reaper = self._host.stop_in_background()
        if self._owner_reads and not self._in_read:
            self._start_reader()

    def join(self, timeout: float = 15.0) -> bool:
        """Wait until the host is gone and the reader has delivered `Exited`; True if it did."""
        deadline = time.monotonic() + timeout
        for thread in (self._reaper, self._reader):
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t is not None and t.is_alive() for t in (self._reaper, self._reader))

    # ----- requests ------------------------------------------------------------------------

    def load(self, request: LoadModel) -> None:
        self._host.send(request)

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                 params: SamplingParams | None = None, *, prompt: str | None = None,
                 cache: bool = True, tools: list[dict[str, Any]] | None = None,
                 listener: Listener | None = None) -> int:
        """Start a generation; its Deltas, then Done or Failed, name the returned id.

        With `listener`, this request's events go to it instead of the connection's listener.
        """
        req_id = next(self._ids)
        with self._lock:
            self._streams[req_id] = StreamAssembler()
            if listener is not None:
                self._routes[req_id] = listener
        try:
            self._host.send(Generate(req_id, messages, enable_thinking, params or SamplingParams(),
                                     prompt, cache, list(tools or [])))
        except OSError:
            with self._lock:
                del self._streams[req_id]
                self._routes.pop(req_id, None)
            raise
        return req_id

    def count_tokens(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                     listener: Listener | None = None,
                     tools: list[dict[str, Any]] | None = None) -> int:
        return self._ask(lambda i: CountTokens(i, messages, enable_thinking, list(tools or [])),
                         listener)

    def tokenize(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                 listener: Listener | None = None,
                 tools: list[dict[str, Any]] | None = None) -> int:
        return self._ask(lambda i: Tokenize(i, messages, enable_thinking, list(tools or [])),
                         listener)

    def _ask(self, make: Callable[[int], CountTokens | Tokenize],
             listener: Listener | None) -> int:
        req_id = next(self._ids)
        with self._lock:
            self._others.add(req_id)
            if listener is not None:
                self._routes[req_id] = listener
        try:
            self._host.send(make(req_id))
        except OSError:
            with self._lock:
                self._others.discard(req_id)
                self._routes.pop(req_id, None)
            raise
        return req_id

    def stop(self, req_id: int) -> None:
        """Stop generation `req_id` now; written straight to the pipe, not queued behind it."""
        with contextlib.suppress(OSError):  # the host is gone: its Exited is on the way
            self._host.send(Stop(req_id))

    def running(self) -> list[int]:
        with self._lock:
            return list(self._streams)

    # ----- reading --------------------------------------------------------------------------

    def read_ready(self) -> bool:
        """Read what the host wrote (`output_fd` is readable) and hand it on; False once the owner
        must stop watching: the output ended or was closed, and a thread finishes the reading."""
        if not self._owner_reads:
            return False
        try:
            events = self._host.read_now()
        except (ProtocolError, OSError, ValueError) as exc:
            log.error("engine stream broken: %s", exc)
            events = None
        if events is None:
            # The end (waiting for the process, Exited) never blocks the owner: a thread does it.
            self._start_reader(self._end_of_output)
            return False
        self._in_read = True
        try:
            for event in events:
                self._route(event)
            self._flush()
        finally:
            self._in_read = False
        if self._reaper is not None:  # closed by a listener while this read was handed on
            self._start_reader()
            return False
        return True

    # ----- the reader thread ---------------------------------------------------------------

    def _read(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - any failure here must still end in Exited
            log.exception("engine event reader failed")
            self._host.request_exit()
            self._host.reap()
            self._emit(Exited(-1, f"{exc}\n{self._host.stderr_tail()}".strip()))

    def _pump(self) -> None:
        # The host batches an answer's text (see host.PIECE_WINDOW_S), so each read's text is
        # handed on at once: one wake-up of this thread and one of the listener's per host
        # message, which on a small machine is CPU taken from llama.cpp.
        while True:
            try:
                events = self._host.read_events(None)
            except (ProtocolError, OSError, ValueError) as exc:
                log.error("engine stream broken: %s", exc)
                events = None
            if events is None:
                self._end_of_output()
                return
            for event in events:
                self._route(event)
            self._flush()

    def _end_of_output(self) -> None:
        self._flush()
        self._host.reap()
        with self._lock:
            self._streams.clear()
            self._others.clear()
        self._emit(Exited(self._host.returncode() or 0, self._host.stderr_tail()))

    def _route(self, event: Event) -> None:
        """Feed one event's text to its stream, or deliver the event (a request's end flushes
        its text first)."""
        if isinstance(event, Piece):
            with self._lock:
                stream = self._streams.get(event.id)
            if stream is not None:
                stream.feed(event.text)
            return
        if isinstance(event, (Done, Failed)) and event.id is not None:
            with self._lock:
                stream = self._streams.get(event.id)
                known = stream is not None or event.id in self._others
                self._others.discard(event.id)
            if not known:
                return  # an answer to a request this connection no longer waits for
            if stream is not None:
                stream.finish()
                self._flush_one(event.id, stream)
                with self._lock:
                    del self._streams[event.id]
            self._emit(event, last=True)
            return
        if isinstance(event, (TokenCount, TokenList)):
            with self._lock:
                known = event.id in self._others
                self._others.discard(event.id)
            if known:
                self._emit(event, last=True)
            return
        self._emit(event)

    def _emit(self, event: ClientEvent, last: bool = False) -> None:
        """To the request's own listener if it named one, else to the connection's; `last` ends
        the route. Exited reaches every listener still waiting."""
        if isinstance(event, Exited):
            with self._lock:
                routed, self._routes = list(self._routes.values()), {}
            for each in [self._listener, *dict.fromkeys(routed)]:
                each(event)
            return
        req_id = getattr(event, "id", None)
        with self._lock:
            listener = (self._routes.pop(req_id, None) if last else self._routes.get(req_id)
                        ) if req_id is not None else None
        (listener or self._listener)(event)

    def _flush(self) -> None:
        """Deliver the text that arrived since the last read."""
        with self._lock:
            streams = list(self._streams.items())
        for req_id, stream in streams:
            self._flush_one(req_id, stream)

    def _flush_one(self, req_id: int, stream: StreamAssembler) -> None:
        batch = stream.take()
        if batch:
            self._emit(Deltas(req_id, batch))
