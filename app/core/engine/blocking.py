"""The engine for callers without an event loop (the CLI, tests, benchmarks): one call, one answer."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.engine.connection import ClientEvent, Deltas, EngineConnection, Exited
from app.core.engine.messages import (
    Done,
    Failed,
    Loaded,
    LoadModel,
    Ready,
    TokenCount,
    TokenInfo,
    TokenList,
)
from app.core.engine.records import EngineError, ModelInfo, Reply, SamplingParams

OnDelta = Callable[[str, str], None]


class BlockingEngine:
    """An EngineConnection whose requests block until their answer (or raise EngineError)."""

    def __init__(self, command: list[str] | None = None, log_path: Path | None = None) -> None:
        self._events: queue.Queue[ClientEvent] = queue.Queue()
        self.connection = EngineConnection(self._events.put, command, log_path)
        self.info: ModelInfo | None = None

    def __enter__(self) -> BlockingEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self, timeout: float = 120.0) -> int:
        """Start the host; its pid."""
        self.connection.start()
        ready = self._next(lambda e: isinstance(e, Ready), timeout, "start")
        assert isinstance(ready, Ready)
        return ready.pid

    def load(self, request: LoadModel, timeout: float = 600.0) -> ModelInfo:
        self.connection.load(request)
        loaded = self._next(lambda e: isinstance(e, Loaded), timeout, "load")
        assert isinstance(loaded, Loaded)
        self.info = loaded.info
        return loaded.info

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                 params: SamplingParams | None = None, *, prompt: str | None = None,
                 cache: bool = True, tools: list[dict[str, Any]] | None = None,
                 on_delta: OnDelta | None = None, timeout: float = 3600.0) -> Reply:
        """Run one generation to its end; Ctrl+C stops it (the partial reply is returned)."""
        req_id = self.connection.generate(messages, enable_thinking, params, prompt=prompt,
                                          cache=cache, tools=tools)
        reply = Reply(req_id)

        def take(event: ClientEvent) -> bool:
            if isinstance(event, Deltas) and event.id == req_id:
                for kind, text in event.pieces:
                    reply.add(kind, text)
                    if on_delta is not None:
                        on_delta(kind, text)
            return isinstance(event, Done) and event.id == req_id

        try:
            done = self._next(take, timeout, "generate", req_id)
        except KeyboardInterrupt:
            self.connection.stop(req_id)
            done = self._next(take, timeout, "generate", req_id)
        assert isinstance(done, Done)
        reply.stats = done.stats
        return reply

    def tokenize(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                 timeout: float = 120.0) -> list[TokenInfo]:
        req_id = self.connection.tokenize(messages, enable_thinking)
        event = self._next(lambda e: isinstance(e, TokenList) and e.id == req_id, timeout,
                           "tokenize", req_id)
        assert isinstance(event, TokenList)
        return event.tokens

    def count_tokens(self, messages: list[dict[str, Any]], enable_thinking: bool = False,
                     timeout: float = 120.0) -> int:
        req_id = self.connection.count_tokens(messages, enable_thinking)
        event = self._next(lambda e: isinstance(e, TokenCount) and e.id == req_id, timeout,
                           "count_tokens", req_id)
        assert isinstance(event, TokenCount)
        return event.count

    def close(self, timeout: float = 15.0) -> None:
        """End the host and wait until it is gone."""
        self.connection.close()
        self.connection.join(timeout)

    def _next(self, wanted: Callable[[ClientEvent], bool], timeout: float, what: str,
              req_id: int | None = None) -> ClientEvent:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError("internal", f"The engine did not answer ({what}) within {timeout:.0f} s.")
            try:
                event = self._events.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if wanted(event):
                return event
            if isinstance(event, Failed) and (event.id == req_id or event.id is None):
                raise EngineError(event.kind, event.message)
            if isinstance(event, Exited):
                raise EngineError("internal", f"The engine stopped (exit {event.code}).\n"
                                              f"{event.stderr_tail}".rstrip())
