"""The window's chat on an OpenAI-compatible server: what EngineClient uses instead of its host.

`RemoteTransport` runs `RemoteChat` (app.core.remote) on a worker thread per answer, through the
app's Operation helper, and reports in the engine's own terms: a request id per answer, its
("thinking" | "answer", text) deltas, then the finished `Reply` (stats included) or a failure
message. "Connecting" is asking the server for its model list: an unreachable server, a refused
key or a model the server does not have fail there, in words, before the first message.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.engine.records import ModelInfo, Reply, SamplingParams
from app.core.remote.client import RemoteChat, RemoteError
from app.core.remote.servers import RemoteServer
from app.services.operations import OpContext, Operation

log = logging.getLogger(__name__)

REMOTE_ARCH = "remote"


def remote_model_info(server: RemoteServer) -> ModelInfo:
    """What the window shows for a server's model ("gemma-4-e4b @ gpu-box:8000")."""
    # Vision and audio are the server's to judge: an unsupported part comes back as its error.
    return ModelInfo(path=server.model_path, name=server.label, arch=REMOTE_ARCH, n_ctx=0,
                     n_ctx_train=0, n_gpu_layers=0, n_layers=0, size_bytes=0, has_template=True,
                     supports_vision=True, supports_audio=True)


def check_server(server: RemoteServer) -> list[str]:
    """The server's model ids; RemoteError when it cannot be reached, refuses the key or lacks the model."""
    with RemoteChat(server.endpoint, read_timeout=30.0) as chat:
        models = chat.models()
    if server.model and models and server.model not in models:
        shown = ", ".join(models[:8]) + (" …" if len(models) > 8 else "")
        raise RemoteError("model", f"{server.host} has no model {server.model!r}; it serves: {shown}.")
    return models


class _Answer:
    """One answer in flight: its id, its own RemoteChat (so a stop never reaches the next) and stop."""

    def __init__(self, req_id: int, chat: RemoteChat, op: Operation) -> None:
        self.id = req_id
        self.chat = chat
        self.op = op
        self.stop = threading.Event()


class RemoteTransport(QObject):
    """One server: check it, then answer one message at a time; every signal names its answer."""

    sig_ready = Signal(object)  # ModelInfo
    sig_unavailable = Signal(str)  # why the server cannot be used
    sig_delta = Signal(int, str, str)  # request id, kind, text
    sig_done = Signal(int, object)  # request id, Reply (stats included)
    sig_failed = Signal(int, str)  # request id, message (the streamed text stays with the client)

    def __init__(self, server: RemoteServer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server = server
        self._ids = itertools.count(1)
        self._answer: _Answer | None = None
        self._check = Operation(lambda _ctx: check_server(server), name="remote-check", parent=self)
        self._check.sig_succeeded.connect(self._on_check_succeeded)
        self._check.sig_failed.connect(self.sig_unavailable)
        self._closed = False

    def connect_server(self) -> None:
        """Ask the server for its models in the background; sig_ready or sig_unavailable follows."""
        self._check.start()

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool,
                 params: SamplingParams, tools: list[dict[str, Any]] | None = None) -> int:
        """Start an answer; `tools` (function declarations) are offered to the server's model."""
        req_id = next(self._ids)
        chat = RemoteChat(self.server.endpoint)
        model = self.server.model
        op = Operation(lambda ctx: self._run(answer, ctx, messages, enable_thinking, params, model,
                                             tools),
                       name=f"remote-answer-{req_id}", parent=self)
        answer = _Answer(req_id, chat, op)
        op.sig_item.connect(lambda piece: self._on_item(answer, piece))
        op.sig_succeeded.connect(lambda reply: self._on_succeeded(answer, reply))
        op.sig_failed.connect(lambda message: self._on_failed(answer, message))
        self._answer = answer
        op.start()
        return req_id

    def stop(self, req_id: int | None = None) -> None:
        """End the answer now: its stream is closed, so the server stops writing too."""
        answer = self._answer
        if answer is not None and req_id in (None, answer.id):
            answer.stop.set()
            answer.chat.stop()

    def close(self) -> None:
        """Stop whatever runs and drop everything it still reports (the user chose another model)."""
        self._closed = True
        self.stop()
        self._answer = None

    def wait(self, timeout: float = 10.0) -> bool:
        answer = self._answer
        return answer is None or answer.op.wait(int(timeout * 1000))

    # ----- worker thread -------------------------------------------------------------------

    @staticmethod
    def _run(answer: _Answer, ctx: OpContext, messages: list[dict[str, Any]],
             enable_thinking: bool, params: SamplingParams, model: str,
             tools: list[dict[str, Any]] | None) -> Reply:
        def on_delta(kind: str, text: str) -> None:
            ctx.item((kind, text))
            if answer.stop.is_set():  # a stop that came before the stream was open
                answer.chat.stop()

        try:
            if answer.stop.is_set():
                reply = Reply(answer.id)
            else:
                reply = answer.chat.chat(model, messages, enable_thinking, params,
                                         on_delta=on_delta, tools=tools)
        finally:
            answer.chat.close()
        reply.id = answer.id
        return reply

    # ----- reactions -----------------------------------------------------------------------

    def _live(self, answer: _Answer) -> bool:
        return not self._closed and answer is self._answer

    def _on_item(self, answer: _Answer, piece: object) -> None:
        if self._live(answer) and isinstance(piece, tuple):
            kind, text = piece
            self.sig_delta.emit(answer.id, str(kind), str(text))

    def _on_succeeded(self, answer: _Answer, reply: object) -> None:
        if self._live(answer) and isinstance(reply, Reply):
            self._answer = None
            answer.op.deleteLater()
            self.sig_done.emit(answer.id, reply)

    def _on_failed(self, answer: _Answer, message: str) -> None:
        if self._live(answer):
            self._answer = None
            answer.op.deleteLater()
            self.sig_failed.emit(answer.id, message)

    def _on_check_succeeded(self, _models: object) -> None:
        if not self._closed:
            self.sig_ready.emit(remote_model_info(self.server))
