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


@dataclass(frozen=True)
class GenRequest:
    """One generation: a conversation (`messages`) or a raw `prompt`."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    enable_thinking: bool = False
    params: SamplingParams = field(default_factory=SamplingParams)
    prompt: str | None = None


@dataclass(frozen=True)
class Delta:
    kind: str  # "thinking" | "answer"
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

    def tokens(self, messages: list[dict[str, Any]], enable_thinking: bool) -> list[TokenInfo]: ...


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
                                         request.params, prompt=request.prompt)
            self._sinks[req_id] = sink
        return req_id

    def stop(self, req_id: int) -> None:
        self._conn.stop(req_id)

    def tokens(self, messages: list[dict[str, Any]], enable_thinking: bool) -> list[TokenInfo]:
        answer: queue.Queue[TokenList | Error] = queue.Queue()

        def sink(event: Any) -> None:
            answer.put(event)

        with self._lock:
            req_id = self._conn.tokenize(messages, enable_thinking)
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
        if found is None:
            return
        sink = found
        if isinstance(event, Deltas):
            for kind, text in event.pieces:
                sink(Delta(kind, text))
        elif isinstance(event, Done):
            sink(Finished(event.stats))
        elif isinstance(event, Failed):
            sink(Error(event.kind, event.message))
        else:
            sink(event)  # type: ignore[arg-type]  # TokenList, for `tokens`

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
