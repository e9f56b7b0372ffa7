"""The GUI's engine client: an `EngineConnection` whose events arrive as Qt signals on the GUI thread.

One generation at a time: `generate()` refuses while an answer is being written (the chat waits
for `sig_finished`/`sig_failed` of the one it stopped before it starts the next). Every signal
about a generation names its id, and the client drops events of ids it is not waiting for and of
hosts it has replaced, so text of a stopped answer cannot land in the next.

`use_remote(server)` puts the chat on an OpenAI-compatible server instead (a `RemoteTransport`
behind the same signals, ids included); `load_model` brings it back to a local host.
"""

from __future__ import annotations

import logging
import signal as _signal
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, Signal

from app.core import paths
from app.core.engine import backends
from app.core.engine.connection import ClientEvent, Deltas, EngineConnection, Exited
from app.core.engine.messages import (
    DEFAULT_N_CTX,
    Done,
    Failed,
    Loaded,
    LoadModel,
    Progress,
    Ready,
)
from app.core.engine.records import ModelInfo, Reply, SamplingParams
from app.core.remote.servers import RemoteServer
from app.services.remote_engine import RemoteTransport

log = logging.getLogger(__name__)


class EngineBusy(RuntimeError):
    """A generation is still running (stop it, and wait for its end, first)."""


class EngineClient(QObject):
    """Start/stop the engine host, load models, generate; everything arrives as signals."""

    sig_host_started = Signal()
    sig_load_progress = Signal(float)
    sig_loaded = Signal(dict)  # ModelInfo as a dict
    sig_load_failed = Signal(str)
    sig_delta = Signal(int, str, str)  # request id, kind ("thinking" | "answer" | "tool_call"), text
    sig_finished = Signal(object)  # Reply: its whole text and stats
    sig_failed = Signal(int, str)  # request id, message
    sig_engine_crashed = Signal(str)
    _sig_event = Signal(object, object)  # (connection, event), from the reader thread

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self._command = command
        self._conn: EngineConnection | None = None
        self._reply: Reply | None = None  # the generation being written
        self._load: LoadModel | None = None  # what restart() reloads
        self.model: ModelInfo | None = None
        self._loading = False
        self._retired: list[EngineConnection] = []  # hosts being ended, joined by wait_closed()
        self._remote: RemoteTransport | None = None  # the chat runs on a server instead of a host
        self._watch: QSocketNotifier | None = None  # the running host's event pipe
        self._sig_event.connect(self._on_connection_event)

    # ----- state ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A generation is running (until its sig_finished or sig_failed)."""
        return self._reply is not None

    @property
    def reply(self) -> Reply | None:
        """The generation being written now, with its text so far."""
        return self._reply

    @property
    def model_info(self) -> dict[str, Any] | None:
        """The loaded model as a dict (for display), None while none is loaded."""
        return asdict(self.model) if self.model is not None else None

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def remote(self) -> RemoteServer | None:
        """The server the chat runs on, None while it runs on a local host."""
        return self._remote.server if self._remote is not None else None

    @property
    def connection(self) -> EngineConnection | None:
        """The running host's connection (the API server sends its own requests through it)."""
        return self._conn

    @property
    def host_pid(self) -> int | None:
        return self._conn.pid if self._conn is not None and self._conn.alive() else None

    # ----- host lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the host process (done lazily by load_model)."""
        if self._conn is not None and self._conn.alive():
            return
        # Emitted from the GUI thread (its reads) the signal is a direct call; from the
        # connection's thread (the last events after the host's end) it is queued.
        conn = EngineConnection(lambda ev: self._sig_event.emit(conn, ev), self._command,
                                log_path=paths.log_dir() / "engine.log")
        self._conn = conn
        # The GUI thread reads the host's events itself: a host message then wakes one thread,
        # not a reader thread and then the GUI thread (on a small machine each wake-up is CPU
        # taken from llama.cpp). Reading never blocks: it happens when the pipe is readable,
        # and the connection's own thread takes over for the host's end.
        conn.start(reader=False)
        self._watch = QSocketNotifier(conn.output_fd, QSocketNotifier.Type.Read, self)
        # A slot without parameters: PySide then skips converting the signal's two arguments
        # (about 50 us of a host message's 180 us wake-up here).
        self._watch.activated.connect(lambda: self._on_readable(conn))

    def _on_readable(self, conn: EngineConnection) -> None:
        if not conn.read_ready():
            self._unwatch(conn)  # the connection's thread reads the rest

    def _unwatch(self, conn: EngineConnection) -> None:
        if conn is self._conn and self._watch is not None:
            self._watch.setEnabled(False)
            self._watch.deleteLater()
            self._watch = None

    def shutdown(self) -> None:
        """End the host without blocking the GUI: it is asked to exit and reaped in the background."""
        conn = self._conn
        if conn is not None:
            self._unwatch(conn)
            self._conn = None
            conn.close()
            self._retired.append(conn)
        remote, self._remote = self._remote, None
        if remote is not None:
            remote.close()  # its answer stops; whatever it still reports is dropped
        self._end_reply()
        self._loading = False
        self.model = None

    def wait_closed(self, timeout: float = 15.0) -> bool:
        """Block until every host this client ended is gone (app exit, tests, the CLI)."""
        ok = all(conn.join(timeout) for conn in self._retired)
        self._retired = [c for c in self._retired if c.alive()]
        return ok

    def restart(self) -> None:
        """After a crash: a fresh host with the last model."""
        self.shutdown()
        if self._load is not None:
            self._start_load(self._load)
        else:
            self.start()

    # ----- requests ------------------------------------------------------------------------

    def load_model(self, path: str, mmproj: str | None = None, n_ctx: int = DEFAULT_N_CTX,
                   n_gpu_layers: int | None = None, n_threads: int | None = None,
                   chat_template: str | None = None, **options: Any) -> None:
        """Load a model in a fresh host (switching models ends the old host: all memory returns).

        n_gpu_layers None is "auto": the host offloads as many layers as fit in free memory.
        """
        self._start_load(LoadModel(path, mmproj, n_ctx, n_gpu_layers, n_threads, chat_template,
                                   **options))

    def use_remote(self, server: RemoteServer) -> None:
        """Chat on `server` from now on (the local host, if any, ends and its memory returns).

        The server is asked for its models first: sig_loaded when it has the model, else
        sig_load_failed saying why (refused connection, refused key, unknown model).
        """
        self.shutdown()
        transport = RemoteTransport(server, self)
        transport.sig_ready.connect(lambda info: self._on_remote_ready(transport, info))
        transport.sig_unavailable.connect(lambda msg: self._on_remote_unavailable(transport, msg))
        transport.sig_delta.connect(lambda i, k, t: self._on_remote_delta(transport, i, k, t))
        transport.sig_done.connect(lambda i, reply: self._on_remote_done(transport, i, reply))
        transport.sig_failed.connect(lambda i, msg: self._on_remote_failed(transport, i, msg))
        self._remote = transport
        self._loading = True
        transport.connect_server()

    def _start_load(self, request: LoadModel) -> None:
        self._load = request
        if self.model is not None or self.busy or self._loading or self._remote is not None:
            self.shutdown()
        self.start()
        assert self._conn is not None
        self._loading = True
        self._conn.load(request)

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool,
                 params: dict[str, Any] | SamplingParams, *, prompt: str | None = None,
                 tools: list[dict[str, Any]] | None = None) -> int:
        """Start a generation; returns its id. sig_delta, then sig_finished or sig_failed follow.

        ``tools``: OpenAI-style function declarations the template offers the model; its calls
        arrive as "tool_call" deltas and in ``Reply.tool_calls``.
        Raises EngineBusy while another generation runs, RuntimeError when no host is running.
        """
        if self._reply is not None:
            raise EngineBusy("an answer is still being written")
        if self._remote is not None and self.model is not None:
            sampling = (params if isinstance(params, SamplingParams)
                        else SamplingParams.from_dict(params))
            req_id = self._remote.generate(messages, enable_thinking, sampling, tools)
            self._reply = Reply(req_id)
            return req_id
        if self._conn is None or not self._conn.alive():
            raise RuntimeError("the engine is not running")
        sampling = params if isinstance(params, SamplingParams) else SamplingParams.from_dict(params)
        req_id = self._conn.generate(messages, enable_thinking, sampling, prompt=prompt,
                                     tools=tools)
        self._reply = Reply(req_id)
        return req_id

    def generate_raw(self, prompt: str, params: dict[str, Any]) -> int:
        """Complete a raw prompt (no template); used by benchmarks and base models."""
        return self.generate([], False, params, prompt=prompt)

    def stop(self, req_id: int | None = None) -> None:
        """Stop the running generation now: written straight to the pipe, not queued behind it."""
        reply = self._reply
        if self._remote is not None and reply is not None and req_id in (None, reply.id):
            self._remote.stop(reply.id)
        elif self._conn is not None and reply is not None and req_id in (None, reply.id):
            self._conn.stop(reply.id)

    # ----- events --------------------------------------------------------------------------

    def _end_reply(self) -> Reply | None:
        reply, self._reply = self._reply, None
        return reply

    def _on_connection_event(self, conn: EngineConnection, event: ClientEvent) -> None:
        if conn is not self._conn:
            if isinstance(event, Exited) and conn in self._retired:
                self._retired.remove(conn)
            return  # queued by a host that has since been replaced (a switch or a restart)
        if isinstance(event, Deltas):
            reply = self._reply
            if reply is None or event.id != reply.id:
                return
            for kind, text in event.pieces:
                reply.add(kind, text)
                self.sig_delta.emit(reply.id, kind, text)
        elif isinstance(event, Done):
            if self._reply is not None and event.id == self._reply.id:
                reply = self._end_reply()
                assert reply is not None
                reply.stats = event.stats
                self.sig_finished.emit(reply)
        elif isinstance(event, Failed):
            self._on_failed(event)
        elif isinstance(event, Ready):
            self.sig_host_started.emit()
        elif isinstance(event, Progress):
            self.sig_load_progress.emit(float(event.fraction))
        elif isinstance(event, Loaded):
            self._loading = False
            self.model = event.info
            self.sig_loaded.emit(asdict(event.info))
        elif isinstance(event, Exited):
            self._on_exited(conn, event)

    def _on_remote_ready(self, transport: RemoteTransport, info: ModelInfo) -> None:
        if transport is self._remote:
            self._loading = False
            self.model = info
            self.sig_loaded.emit(asdict(info))

    def _on_remote_unavailable(self, transport: RemoteTransport, message: str) -> None:
        if transport is self._remote:
            self._remote = None
            self._loading = False
            self.sig_load_failed.emit(message)

    def _on_remote_delta(self, transport: RemoteTransport, req_id: int, kind: str,
                         text: str) -> None:
        reply = self._reply
        if transport is self._remote and reply is not None and reply.id == req_id:
            reply.add(kind, text)
            self.sig_delta.emit(req_id, kind, text)

    def _on_remote_done(self, transport: RemoteTransport, req_id: int, done: Reply) -> None:
        if transport is self._remote and self._reply is not None and self._reply.id == req_id:
            reply = self._end_reply()
            assert reply is not None
            reply.stats = done.stats
            self.sig_finished.emit(reply)

    def _on_remote_failed(self, transport: RemoteTransport, req_id: int, message: str) -> None:
        if transport is self._remote and self._reply is not None and self._reply.id == req_id:
            self._end_reply()  # the text streamed so far stays with the chat, beside the message
            self.sig_failed.emit(req_id, message)

    def _on_failed(self, event: Failed) -> None:
        if event.id is None:
            if event.op == "load" or self._loading:
                self._loading = False
                self.sig_load_failed.emit(event.message)
            else:
                log.error("engine error: %s", event.message)
            return
        if self._reply is not None and event.id == self._reply.id:
            self._end_reply()
            self.sig_failed.emit(event.id, event.message)

    def _on_exited(self, conn: EngineConnection, event: Exited) -> None:
        self._conn = None
        was_busy = self.busy or self._loading
        self._end_reply()
        self._loading = False
        self.model = None
        if conn.expected_exit:
            return
        log.error("engine host exited with %s:\n%s", event.code, event.stderr_tail)
        if (variant := backends.host_ended(event.code)) and self._load is not None:
            log.warning("CPU variant %s crashed; retrying on the next one", variant)
            self.restart()  # the new host skips it (app.core.engine.backends)
            return
        if event.code < 0:
            try:
                how = f"was killed by {_signal.Signals(-event.code).name}"
            except ValueError:
                how = f"ended with signal {-event.code}"
        else:
            how = f"exited with code {event.code}"
        activity = " while it was working" if was_busy else ""
        self.sig_engine_crashed.emit(
            f"The engine {how}{activity}. Your conversation is saved.\n\n{event.stderr_tail}".rstrip()
        )
