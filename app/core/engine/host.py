"""The engine host: a child process that owns the model and answers the GUI over a pipe.

Started as `<sys.executable> main.py --engine-host` (or the frozen binary with `--engine-host`).
A native crash in llama.cpp kills only this process; ending it gives all GPU memory back.
stdin carries requests, the original stdout carries events, and fd 1 is pointed at stderr so
that nothing printed by a library can corrupt the protocol.

Requests are served one at a time in arrival order, or, for a model loaded with n_parallel > 1,
up to that many generations at once, decoded together (`batching`); more wait in arrival order.
Stop names its request: a reader thread handles it the moment it arrives (a flag, not a queue),
so it never waits behind the generation it is meant to stop, and a stop for a request still
queued drops that request.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import BinaryIO

from app.core.engine.messages import (
    CountTokens,
    Done,
    Event,
    Failed,
    Generate,
    Loaded,
    LoadModel,
    Piece,
    Ping,
    Pong,
    Progress,
    Ready,
    Request,
    Shutdown,
    Stop,
    TokenCount,
    Tokenize,
    TokenList,
    request_from_wire,
    to_wire,
)
from app.core.engine.protocol import ProtocolError, encode, read_messages
from app.core.engine.records import EngineError, GenerationStats

# How an answer's text is batched into messages. The first piece after a pause goes out at once
# (time to first token); after that a message waits until PIECE_WINDOW_S has passed and it holds
# PIECE_MIN_TOKENS tokens, or until PIECE_MAX_HOLD_S has passed, whichever comes first. Each
# message wakes the receiving process, which shares the CPU with llama.cpp's threads: measured on
# a 2-core virtual machine, a message costs about 0.1 ms in the host (the write) and 0.35 ms in
# the window (most of it the wake-up itself, after a llama_decode has evicted it from the CPU
# caches; trimming the routing code saved nothing measurable), so a message per token or two
# would cost a CPU decode more than the per-token budget of 0.15 ms. A 35-45 tok/s CPU answer so
# moves 7-9 times a second, 5 tokens (a few words) at a time; a 150 tok/s GPU answer 20 times a
# second, 8 tokens at a time; one slower than 8 tok/s a token at a time.
PIECE_WINDOW_S = 0.05
PIECE_MIN_TOKENS = 5
PIECE_MAX_HOLD_S = 0.125


class _Output:
    """Thread-safe event writer."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: Event) -> None:
        data = encode(to_wire(event))
        with self._lock:
            self._stream.write(data)


class _PieceSender:
    """Coalesces the text of one generation; the first piece after a pause goes out at once."""

    def __init__(self, out: _Output, req_id: int) -> None:
        self._out = out
        self._id = req_id
        self._parts: list[str] = []
        self._last = 0.0

    def __call__(self, text: str) -> None:
        parts = self._parts
        parts.append(text)
        now = time.perf_counter()
        held = now - self._last
        if held >= PIECE_MAX_HOLD_S or (held >= PIECE_WINDOW_S and len(parts) >= PIECE_MIN_TOKENS):
            self.flush()
            self._last = now

    def flush(self) -> None:
        if self._parts:
            self._out.send(Piece(self._id, "".join(self._parts)))
            self._parts.clear()


class _Stops:
    """Which requests the client asked to stop; shared by the reader thread and the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, threading.Event] = {}
        self._cancelled: set[int] = set()
        self._closing = False

    def request(self, req_id: int) -> None:
        with self._lock:
            event = self._running.get(req_id)
            if event is not None:
                event.set()
            else:
                self._cancelled.add(req_id)

    def begin(self, req_id: int, event: threading.Event) -> bool:
        """Mark `req_id` running, stopped through `event`; False when it was stopped before it started."""
        with self._lock:
            if req_id in self._cancelled:
                self._cancelled.discard(req_id)
                return False
            self._running[req_id] = event
            if self._closing:
                event.set()
            else:
                event.clear()
            return True

    def end(self, req_id: int) -> None:
        with self._lock:
            self._running.pop(req_id, None)

    def stop_all(self) -> None:
        with self._lock:
            self._closing = True
            for event in self._running.values():
                event.set()


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
    stops = _Stops()
    jobs: queue.Queue[Request | None] = queue.Queue()

    def reader() -> None:
        try:
            for raw in read_messages(requests_in.read):
                try:
                    request = request_from_wire(raw)
                except ProtocolError as exc:  # well framed but not a request we know: say so
                    out.send(Failed(raw.get("id"), "input", str(exc), str(raw.get("op", ""))))
                    continue
                if isinstance(request, Stop):
                    stops.request(request.id)
                elif isinstance(request, Ping):
                    out.send(Pong())
                else:
                    jobs.put(request)
        except (ProtocolError, OSError, ValueError) as exc:
            # A damaged request stream cannot be resynchronised: say so, then end like an EOF.
            traceback.print_exc()
            out.send(Failed(None, "internal", f"The engine received a damaged request: {exc}",
                            "protocol"))
        stops.stop_all()  # the GUI went away (or the stream broke): finish quickly
        jobs.put(None)

    threading.Thread(target=reader, name="engine-host-reader", daemon=True).start()
    out.send(Ready(os.getpid()))
    batched: _Batched | None = None
    while True:
        if batched is not None and batched.has_work():
            try:
                request = jobs.get_nowait()
            except queue.Empty:
                batched.step()
                continue
        else:
            request = jobs.get()
        if request is None or isinstance(request, Shutdown):
            break
        try:
            if batched is not None and isinstance(request, Generate):
                batched.submit(request)
                continue
            if batched is not None and isinstance(request, LoadModel):
                batched.finish_all()  # what was asked before the new model is answered first
                batched = None
            _handle(request, session, out, stops, jobs.empty)
            if isinstance(request, LoadModel) and engine.slots:
                batched = _Batched(engine, session, out, stops)
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not end the host
            traceback.print_exc()
            out.send(Failed(getattr(request, "id", None), "internal", str(exc), request.TAG))
    engine.close()
    return 0


class _Batched:
    """The worker's side of a model loaded with n_parallel > 1: a fair (FIFO) queue of
    generations in front of the batch runner's slots; events name each request's id."""

    def __init__(self, engine: object, session: object, out: _Output, stops: _Stops) -> None:
        from app.core.engine.batching import BatchRunner
        from app.core.engine.llama_engine import LlamaEngine
        from app.core.engine.session import EngineSession

        assert isinstance(engine, LlamaEngine) and isinstance(session, EngineSession)
        self._runner = BatchRunner(engine, session)
        self._out = out
        self._stops = stops
        self._waiting: deque[Generate] = deque()
        self._senders: dict[int, _PieceSender] = {}  # by slot sequence
        self._ids: dict[int, int] = {}  # request id by slot sequence

    def submit(self, request: Generate) -> None:
        self._waiting.append(request)

    def has_work(self) -> bool:
        """Whether a step is due; when none is, settles one idle slot's last answer instead
        (as the single-sequence host does while the user reads it)."""
        return bool(self._waiting) or self._runner.busy() or self._runner.settle_one()

    def finish_all(self) -> None:
        while self._waiting or self._runner.busy():
            self.step()

    def step(self) -> None:
        self._admit()
        for slot, result in self._runner.step():
            req_id = self._ids.pop(slot._seq)
            self._senders.pop(slot._seq).flush()
            self._stops.end(req_id)
            if isinstance(result, EngineError):
                self._out.send(Failed(req_id, result.kind, result.message, Generate.TAG))
            else:
                self._out.send(Done(req_id, result))

    def _admit(self) -> None:
        runner = self._runner
        while self._waiting and runner.free():
            request = self._waiting.popleft()
            stop = threading.Event()
            if not self._stops.begin(request.id, stop):
                self._out.send(Done(request.id, GenerationStats(stopped=True, finish_reason="stopped")))
                continue
            sender = _PieceSender(self._out, request.id)
            try:
                slot = runner.start(request, sender, stop)
            except EngineError as exc:
                self._stops.end(request.id)
                sender.flush()
                self._out.send(Failed(request.id, exc.kind, exc.message, request.TAG))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug in one request must not end the host
                traceback.print_exc()
                self._stops.end(request.id)
                self._out.send(Failed(request.id, "internal", str(exc), request.TAG))
                continue
            self._senders[slot._seq] = sender
            self._ids[slot._seq] = request.id


def _handle(request: Request, session: object, out: _Output, stops: _Stops,
            idle: Callable[[], bool]) -> None:
    from app.core.engine.session import EngineSession

    assert isinstance(session, EngineSession)
    req_id = getattr(request, "id", None)
    try:
        if isinstance(request, LoadModel):
            info = session.load(request, on_progress=lambda f: out.send(Progress(f)))
            out.send(Loaded(info))
        elif isinstance(request, Generate):
            if not stops.begin(request.id, session.engine.stop_event):
                out.send(Done(request.id, GenerationStats(stopped=True, finish_reason="stopped")))
                return
            sender = _PieceSender(out, request.id)
            try:
                stats = session.generate(request, on_piece=sender)
            finally:
                stops.end(request.id)
                sender.flush()
            out.send(Done(request.id, stats))
            if idle():  # while the user reads the answer; a waiting request goes first
                session.engine.settle_last_answer()
            else:
                session.engine.drop_last_answer()
        elif isinstance(request, Tokenize):  # before CountTokens, which it extends
            tokens = session.token_list(request.messages, request.enable_thinking, request.tools)
            out.send(TokenList(request.id, tokens))
        elif isinstance(request, CountTokens):
            count = session.count_tokens(request.messages, request.enable_thinking, request.tools)
            out.send(TokenCount(request.id, count))
    except EngineError as exc:
        out.send(Failed(req_id, exc.kind, exc.message, request.TAG))
