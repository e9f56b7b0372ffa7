"""What the OpenAI layer needs from an engine, and the adapter to the engine host connection."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.core.engine.connection import ClientEvent, Deltas, EngineConnection, Exited
from app.core.engine.messages import (
    Done,
    Failed,
    Loaded,
    LoadModel,
    Ready,
    TokenInfo,
    TokenList,
)
from app.core.engine.records import EngineError, GenerationStats, ModelInfo, SamplingParams
from app.server.convert import BadRequest

NO_MODEL = "No model is loaded in Gemma Desktop. Load one in the window, then try again."


@dataclass(frozen=True)
class GenRequest:
    """One generation: a conversation (`messages`) or a raw `prompt`."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    enable_thinking: bool = False
    params: SamplingParams = field(default_factory=SamplingParams)
    prompt: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # declarations the template offers


@dataclass(frozen=True)
class Delta:
    kind: str  # "thinking" | "answer" | "tool_call" (one whole call block, markers included)
    text: str


@dataclass(frozen=True)
class Finished:
    stats: GenerationStats


@dataclass(frozen=True)
class Error:
    kind: str  # load | context | input | internal
    message: str


PortEvent = Delta | Finished | Error
Sink = Callable[[PortEvent], None]


class EnginePort(Protocol):
    """The engine as the server sees it; events reach `sink` on the engine's thread."""

    @property
    def info(self) -> ModelInfo | None: ...

    def generate(self, request: GenRequest, sink: Sink) -> int: ...

    def stop(self, req_id: int) -> None: ...

    def tokens(self, messages: list[dict[str, Any]], enable_thinking: bool,
               tools: list[dict[str, Any]] | None = None) -> list[TokenInfo]: ...


class ConnectionEngine:
    """EnginePort over one engine host process (`EngineConnection`)."""

    def __init__(self, command: list[str] | None = None, log_path: Path | None = None) -> None:
        self._conn = EngineConnection(self._on_event, command, log_path)
        self._lock = threading.Lock()
        self._sinks: dict[int, Sink] = {}
        self._control: queue.Queue[ClientEvent] = queue.Queue()
        self._info: ModelInfo | None = None

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    def start(self, load: LoadModel, timeout: float = 600.0) -> ModelInfo:
        """Start the host and load the model; EngineError if either fails."""
        self._conn.start()
        self._wait(Ready, timeout)
        self._conn.load(load)
        loaded = self._wait(Loaded, timeout)
        assert isinstance(loaded, Loaded)
        self._info = loaded.info
        return loaded.info

    def close(self) -> None:
        self._conn.close()
        self._conn.join()

    def generate(self, request: GenRequest, sink: Sink) -> int:
        with self._lock:  # the reader thread must not see this id's events before its sink
            req_id = self._conn.generate(request.messages, request.enable_thinking,
                                         request.params, prompt=request.prompt,
                                         tools=request.tools)
            self._sinks[req_id] = sink
        return req_id

    def stop(self, req_id: int) -> None:
        self._conn.stop(req_id)

    def tokens(self, messages: list[dict[str, Any]], enable_thinking: bool,
               tools: list[dict[str, Any]] | None = None) -> list[TokenInfo]:
        answer: queue.Queue[TokenList | Error] = queue.Queue()

        def sink(event: Any) -> None:
            answer.put(event)

        with self._lock:
            req_id = self._conn.tokenize(messages, enable_thinking, tools=tools)
            self._sinks[req_id] = sink
        result = answer.get(timeout=120)
        if isinstance(result, Error):
            raise EngineError(result.kind, result.message)
        return result.tokens

    def _on_event(self, event: ClientEvent) -> None:
        if isinstance(event, Exited):
            with self._lock:
                sinks, self._sinks = list(self._sinks.values()), {}
            for each in sinks:
                each(Error("internal", f"The engine stopped (exit {event.code})."))
            self._control.put(event)
            return
        req_id = getattr(event, "id", None)
        if req_id is None or not isinstance(event, (Deltas, Done, Failed, TokenList)):
            self._control.put(event)
            return
        with self._lock:
            found = self._sinks.get(req_id)
            if isinstance(event, (Done, Failed, TokenList)):
                self._sinks.pop(req_id, None)
        if found is not None:
            _deliver(event, found)

    def _wait(self, wanted: type, timeout: float) -> ClientEvent:
        while True:
            event = self._control.get(timeout=timeout)
            if isinstance(event, wanted):
                return event
            if isinstance(event, Failed):
                raise EngineError(event.kind, event.message)
            if isinstance(event, Exited):
                raise EngineError("internal", f"The engine stopped (exit {event.code}).\n"
                                              f"{event.stderr_tail}".rstrip())


def _deliver(event: ClientEvent, sink: Sink) -> bool:
    """One engine event of a request, as port events; True when it ended the request."""
    if isinstance(event, Deltas):
        for kind, text in event.pieces:
            sink(Delta(kind, text))
        return False
    if isinstance(event, Done):
        sink(Finished(event.stats))
    elif isinstance(event, Failed):
        sink(Error(event.kind, event.message))
    elif isinstance(event, TokenList):
        sink(event)  # type: ignore[arg-type]  # for `tokens`
    else:
        return False
    return True


Current = Callable[[], tuple[EngineConnection | None, ModelInfo | None]]


class SharedEngine:
    """EnginePort over a connection someone else owns: the window's host and its loaded model.

    `current()` names the window's connection and the model loaded in it (None while none is),
    read at each request, so a model switched in the window is what the API serves next. Each
    request's events come back on a listener of its own (the window's listener never sees them);
    the host runs the window's and the API's requests in arrival order. `on_live` hears the
    number of API generations running each time it changes (on the engine's reader thread).
    """

    def __init__(self, current: Current, on_live: Callable[[int], None] | None = None) -> None:
        self._current = current
        self._on_live = on_live or (lambda _n: None)
        self._lock = threading.Lock()
        self._running: dict[int, EngineConnection] = {}
        self._closed = False

    def close(self) -> None:
        """The server is gone: what the engine still reports for its requests is dropped."""
        with self._lock:
            self._closed = True
            self._on_live = lambda _n: None

    @property
    def info(self) -> ModelInfo | None:
        conn, info = self._current()
        return info if conn is not None else None

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._running)

    def _connection(self) -> EngineConnection:
        conn, info = self._current()
        if conn is None or info is None:
            raise BadRequest(NO_MODEL, None, 503, "model_not_loaded")
        return conn

    def generate(self, request: GenRequest, sink: Sink) -> int:
        conn = self._connection()
        cell: list[int] = []  # the id, once known

        def listener(event: ClientEvent) -> None:
            ended = isinstance(event, (Exited, Done, Failed))
            if not self._closed:
                try:
                    if isinstance(event, Exited):
                        sink(Error("internal", _gone(conn, event)))
                    else:
                        _deliver(event, sink)
                except RuntimeError:
                    # The server stopped between the check and now (its event loop is closed):
                    # nobody waits for this, and the window's engine must not suffer for it.
                    pass
            if ended:
                self._ended(cell)

        with self._lock:  # the reader thread cannot end this id before it is counted
            req_id = conn.generate(request.messages, request.enable_thinking, request.params,
                                   prompt=request.prompt, tools=request.tools, listener=listener)
            cell.append(req_id)
            self._running[req_id] = conn
            self._on_live(len(self._running))  # under the lock: never after close()
        return req_id

    def _ended(self, cell: list[int]) -> None:
        with self._lock:
            if cell and self._running.pop(cell[0], None) is not None:
                self._on_live(len(self._running))

    def stop(self, req_id: int) -> None:
        with self._lock:
            conn = self._running.get(req_id)
        if conn is not None:
            conn.stop(req_id)

    def stop_all(self) -> None:
        """Stop every API generation (the server is going away)."""
        with self._lock:
            running = list(self._running.items())
        for req_id, conn in running:
            conn.stop(req_id)

    def tokens(self, messages: list[dict[str, Any]], enable_thinking: bool,
               tools: list[dict[str, Any]] | None = None) -> list[TokenInfo]:
        conn = self._connection()
        answer: queue.Queue[TokenList | Error] = queue.Queue()

        def listener(event: ClientEvent) -> None:
            if isinstance(event, Exited):
                answer.put(Error("internal", _gone(conn, event)))
            else:
                _deliver(event, answer.put)  # type: ignore[arg-type]

        conn.tokenize(messages, enable_thinking, listener=listener, tools=tools)
        result = answer.get(timeout=120)
        if isinstance(result, Error):
            raise EngineError(result.kind, result.message)
        return result.tokens


def _gone(conn: EngineConnection, event: Exited) -> str:
    if conn.expected_exit:
        return "The model was unloaded in Gemma Desktop (switched or closed) during this request."
    return f"The engine stopped (exit {event.code})."
