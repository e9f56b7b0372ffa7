"""A Qt-free client of one engine host: requests by id, events matched to them on a reader thread.

The window (through `services.engine_client`), the CLI, the API server and the benchmarks all talk
to the engine through this class. Every request gets a fresh id; raw text of each generation is
split into thinking and answer by its own `StreamAssembler`, and the text reaches the listener in
~30 ms batches (`Deltas`) rather than once per token. A request may name a listener of its own
(the API server sharing the window's host): its events go there instead of to the connection's
listener, and `Exited` reaches both. Events for ids this connection does not
know (a request already finished or never made) are dropped, so nothing of a stopped answer can
land in the next one.

The listener runs on the reader thread; it must hand events over, not do slow work.
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

COALESCE_S = 0.03  # text reaches the listener in ~30 ms batches, not once per token


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
    """One engine host process and the thread that reads its events."""

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

    # ----- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._host.start()
        self._reader = threading.Thread(target=self._read, name="engine-events", daemon=True)
        self._reader.start()

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
        """End the host without waiting: its reaper and this reader finish in the background."""
        self._reaper = self._host.stop_in_background()

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

    # ----- the reader thread ---------------------------------------------------------------

    def _read(self) -> None:
        try:
            self._pump()
        except Exception as exc:  # noqa: BLE001 - any failure here must still end in Exited
            log.exception("engine event reader failed")
            self._host.request_exit()
            self._host.reap()
            self._emit(Exited(-1, f"{exc}\n{self._host.stderr_tail()}".strip()))

    def _pump(self) -> None:
        # The first text after a pause goes out at once (time to first token); later text waits
        # for the next 30 ms mark.
        last_flush = 0.0
        while True:
            pending = self._has_pending()
            # Nothing held back: sleep until the host writes (no wake-ups while a slow answer
            # streams, which on a small machine would take CPU from llama.cpp).
            wait = max(0.0, last_flush + COALESCE_S - time.monotonic()) if pending else None
            try:
                events = self._host.read_events(wait)
            except (ProtocolError, OSError, ValueError) as exc:
                log.error("engine stream broken: %s", exc)
                events = None
            if events is None:
                self._flush()
                self._host.reap()
                with self._lock:
                    self._streams.clear()
                    self._others.clear()
                self._emit(Exited(self._host.returncode() or 0, self._host.stderr_tail()))
                return
            for event in events:
                if self._route(event) and self._flush():
                    last_flush = time.monotonic()
            now = time.monotonic()
            if now - last_flush >= COALESCE_S and self._flush():
                last_flush = now

    def _route(self, event: Event) -> bool:
        """Feed or deliver one event; True when it ended a request (its text was flushed)."""
        if isinstance(event, Piece):
            with self._lock:
                stream = self._streams.get(event.id)
            if stream is not None:
                stream.feed(event.text)
            return False
        if isinstance(event, (Done, Failed)) and event.id is not None:
            with self._lock:
                stream = self._streams.get(event.id)
                known = stream is not None or event.id in self._others
                self._others.discard(event.id)
            if not known:
                return False  # an answer to a request this connection no longer waits for
            if stream is not None:
                stream.finish()
                self._flush_one(event.id, stream)
                with self._lock:
                    del self._streams[event.id]
            self._emit(event, last=True)
            return True
        if isinstance(event, (TokenCount, TokenList)):
            with self._lock:
                known = event.id in self._others
                self._others.discard(event.id)
            if known:
                self._emit(event, last=True)
            return False
        self._emit(event)
        return False

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

    def _has_pending(self) -> bool:
        with self._lock:
            return any(s.has_pending() for s in self._streams.values())

    def _flush(self) -> bool:
        """Deliver the text that arrived since the last batch; False when there was none."""
        with self._lock:
            streams = list(self._streams.items())
        sent = False
        for req_id, stream in streams:
            sent = self._flush_one(req_id, stream) or sent
        return sent

    def _flush_one(self, req_id: int, stream: StreamAssembler) -> bool:
        batch = stream.take()
        if batch:
            self._emit(Deltas(req_id, batch))
        return bool(batch)
