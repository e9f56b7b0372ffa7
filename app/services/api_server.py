"""The OpenAI-compatible API served from inside the window, over the window's engine host.

uvicorn runs on a thread of its own (an `Operation`), the FastAPI app of `app.server` on a
`SharedEngine`: API requests go to the host the chat uses, with the model loaded there, and a
model switched in the window is what the API serves next. Everything slow (importing the web
stack, binding, serving, shutting down) happens on the server's thread; the GUI hears "bound"
(or why not: a port in use, no key for the network) as a signal. At quit, `shutdown()` stops the API's generations and
waits for the thread.
"""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core import paths
from app.services.operations import OpContext, Operation

log = logging.getLogger(__name__)

SWITCH_TIMEOUT_S = 600.0  # a request that names another model waits this long for it to load
LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only with an API key (check_exposure)


@dataclass(frozen=True)
class ServerPlan:
    """What the settings ask of the server."""

    enabled: bool = False
    port: int = 8080
    lan: bool = False
    allow_switch: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> ServerPlan:
        return cls(settings.server_enabled, settings.server_port, settings.server_lan,
                   settings.server_allow_switch)

    @property
    def host(self) -> str:
        return ALL_INTERFACES if self.lan else LOOPBACK


def lan_address() -> str:
    """This machine's address on its network (what other devices type); loopback if none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # UDP: picks the outgoing interface, sends nothing
        return str(probe.getsockname()[0])
    except OSError:
        return LOOPBACK
    finally:
        probe.close()


@dataclass
class _Serving:
    """One run of the server: what the thread builds, each set once it has."""

    plan: ServerPlan
    api_key: str | None
    sock: socket.socket | None = None  # bound and listening
    listening: bool = False  # the GUI thread has heard so
    stopping: threading.Event = field(default_factory=threading.Event)
    server: Any = None  # uvicorn.Server
    port: Any = None  # SharedEngine


@dataclass
class _Switch:
    """A request's ask to load another installed model, answered on the GUI thread."""

    path: str
    mmproj: str | None
    done: threading.Event = field(default_factory=threading.Event)
    error: str = ""
    slots: tuple[Callable[..., None], ...] = ()  # connected to the client until it ends


# Loads a model in the window (path, projector); False when nothing was started (declined).
LoadHook = Callable[[str, str | None], bool]


class ApiServer(QObject):
    """Start, stop and watch the window's API server; state changes arrive as signals."""

    sig_state_changed = Signal()  # running / url / error changed
    sig_requests_changed = Signal(int)  # API generations running now
    _sig_live = Signal(int)  # from the engine's reader thread
    _sig_switch = Signal(object)  # a _Switch, from the server's thread
    _sig_bound = Signal(object)  # a _Serving whose socket listens, from the server's thread

    def __init__(self, client: Any, models_dir: Any = None, parent: QObject | None = None,
                 load: LoadHook | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._load = load
        self._switch_lock = threading.Lock()  # one model switch at a time
        self._switches: list[_Switch] = []
        self.models_dir = models_dir  # the window's models folder (None: the default one)
        self._plan = ServerPlan()
        self._serving: _Serving | None = None
        self._op: Operation | None = None
        self._pending: ServerPlan | None = None  # to start once the running server has stopped
        self.error = ""
        self.live = 0
        self._sig_live.connect(self._on_live)
        self._sig_switch.connect(self._on_switch)
        self._sig_bound.connect(self._on_bound)

    # ----- state ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Listening (False while it starts or stops)."""
        serving = self._serving
        return serving is not None and serving.listening and not serving.stopping.is_set()

    @property
    def starting(self) -> bool:
        serving = self._serving
        return serving is not None and not serving.listening and not serving.stopping.is_set()

    @property
    def chat_waiting(self) -> bool:
        """The window's own message is queued in the host behind API requests (no text yet)."""
        reply = getattr(self._client, "reply", None)
        return self.live > 0 and reply is not None and not (reply.answer or reply.thinking)

    @property
    def plan(self) -> ServerPlan:
        return self._plan

    @property
    def url(self) -> str | None:
        """The base URL clients use (…/v1), None while the server is off."""
        serving = self._serving
        if serving is None or serving.sock is None or not self.running:
            return None
        port = serving.sock.getsockname()[1]
        host = lan_address() if serving.plan.lan else LOOPBACK
        return f"http://{host}:{port}/v1"

    # ----- control -------------------------------------------------------------------------

    def apply(self, plan: ServerPlan) -> None:
        """Run as `plan` says: start, stop, or restart when what it serves with changed."""
        if (plan == self._plan and (self.running or self.starting or not plan.enabled)
                and self._pending is None):
            return
        self._plan = plan
        if self._serving is not None:
            self._pending = plan if plan.enabled else None
            self._stop()
            return
        if plan.enabled:
            self._start(plan)
        elif self.error:
            self.error = ""
            self.sig_state_changed.emit()

    def reload_key(self) -> None:
        """The API key was replaced: a server open to other devices restarts with the new one."""
        if self._serving is not None and self._plan.lan and self._plan.enabled:
            self._pending = self._plan
            self._stop()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop serving and wait for the thread (the window is closing); True if it ended."""
        self._pending = None
        if self._serving is not None:
            self._stop()
        for switch in list(self._switches):  # a request waiting for a model: it ends now
            self._end_switch(switch, "Gemma Desktop is closing.")
        op, self._op = self._op, None
        ended = op.wait(int(timeout * 1000)) if op is not None else True
        if self._serving is not None and self._serving.port is not None:
            self._serving.port.close()  # this object goes with the window: no more live counts
        self._serving = None
        return ended

    def _start(self, plan: ServerPlan) -> None:
        from app.server.keys import load_key

        self.error = ""
        key = load_key() if plan.lan else None  # the key guards what other devices reach
        serving = self._serving = _Serving(plan, key)
        op = Operation(lambda ctx: self._serve(serving, ctx), name="api-server", parent=self,
                       failure_message=lambda exc: _failure_message(exc, plan))
        op.sig_succeeded.connect(lambda _r: self._on_stopped(serving, op, ""))
        op.sig_failed.connect(lambda message: self._on_stopped(serving, op, message))
        self._op = op
        op.start()
        self.sig_state_changed.emit()

    def _stop(self) -> None:
        serving = self._serving
        assert serving is not None
        serving.stopping.set()
        if serving.port is not None:
            serving.port.stop_all()  # streams end now, so the shutdown does not wait on them
        if serving.server is not None:
            serving.server.should_exit = True
        self.sig_state_changed.emit()

    # ----- the server's thread -------------------------------------------------------------

    def _serve(self, serving: _Serving, _ctx: OpContext) -> None:
        import uvicorn

        from app.server.app import ServerConfig, create_app
        from app.server.engine_port import SharedEngine
        from app.server.runner import _bind, check_exposure

        check_exposure(serving.plan.host, serving.api_key)  # ServeError: said on the page
        sock = serving.sock = _bind(serving.plan.host, serving.plan.port)
        self._sig_bound.emit(serving)
        try:
            serving.port = SharedEngine(self._current, self._sig_live.emit)
            config = ServerConfig(media_dir=_media_dir(), api_key=serving.api_key,
                                  installed=self._installed,
                                  switch_model=self._switch_model if serving.plan.allow_switch
                                  else None)
            api = create_app(serving.port, config)
            serving.server = uvicorn.Server(uvicorn.Config(
                api, log_level="warning", access_log=False, timeout_graceful_shutdown=2))
            if not serving.stopping.is_set():  # else stop() came before there was a server
                serving.server.run(sockets=[sock])
        finally:
            if serving.port is not None:
                serving.port.close()  # the loop is closed: late engine events go nowhere
            sock.close()
            shutil.rmtree(_media_dir(), ignore_errors=True)  # clients' images and audio

    def _current(self) -> tuple[Any, Any]:
        """The window's connection and loaded model, read on the server's thread."""
        client = self._client
        return getattr(client, "connection", None), getattr(client, "model", None)

    def _installed(self) -> list[Any]:
        from app.core.download.store import ModelStore
        from app.server.app import ServedModel

        store = ModelStore(Path(self.models_dir) if self.models_dir else None)
        return [ServedModel(m.filename, m.path, m.key) for m in store.installed()]

    def _switch_model(self, model: Any) -> None:
        """A request named another installed model: the window loads it (blocks this thread)."""
        from app.core.engine.media_files import find_projector
        from app.core.engine.records import EngineError

        with self._switch_lock:
            info = getattr(self._client, "model", None)
            if info is not None and Path(info.path) == Path(model.path):
                return  # a request before this one switched to it already
            projector = find_projector(model.path)
            switch = _Switch(str(model.path), str(projector) if projector else None)
            self._sig_switch.emit(switch)
            if not switch.done.wait(SWITCH_TIMEOUT_S):
                raise EngineError("load", f"{model.id} did not load within "
                                          f"{SWITCH_TIMEOUT_S:.0f} s.")
            if switch.error:
                raise EngineError("load", switch.error)

    # ----- reactions -----------------------------------------------------------------------

    def _on_switch(self, switch: _Switch) -> None:
        client = self._client
        self._switches.append(switch)

        def loaded(info: dict[str, Any]) -> None:
            if Path(str(info.get("path", ""))) == Path(switch.path):
                self._end_switch(switch, "")

        def failed(message: str) -> None:
            self._end_switch(switch, f"{Path(switch.path).name} could not be loaded: {message}")

        switch.slots = (loaded, failed)
        client.sig_loaded.connect(loaded)
        client.sig_load_failed.connect(failed)
        if self._load is None or not self._load(switch.path, switch.mmproj):
            self._end_switch(switch, "The model was not switched: the window is busy with "
                                     "another model or an answer.")

    def _end_switch(self, switch: _Switch, error: str) -> None:
        if switch not in self._switches:
            return
        self._switches.remove(switch)
        loaded, failed = switch.slots
        self._client.sig_loaded.disconnect(loaded)
        self._client.sig_load_failed.disconnect(failed)
        switch.slots = ()
        switch.error = error
        switch.done.set()

    def _on_bound(self, serving: _Serving) -> None:
        serving.listening = True
        if serving is self._serving:
            self.sig_state_changed.emit()

    def _on_live(self, count: int) -> None:
        self.live = count
        self.sig_requests_changed.emit(count)

    def _on_stopped(self, serving: _Serving, op: Operation, failure: str) -> None:
        if failure:
            log.error("the API server stopped: %s", failure)
        if self._serving is serving:
            self._serving = None
            self.error = failure
        if self._op is op:
            op.wait()
            self._op = None
            op.deleteLater()
        if self.live:
            self._on_live(0)
        pending, self._pending = self._pending, None
        if pending is not None:
            self._start(pending)
        else:
            self.sig_state_changed.emit()


def _media_dir() -> Path:
    return paths.cache_dir() / "window-server-media"  # apart from `serve`'s: each cleans its own


def _failure_message(exc: BaseException, plan: ServerPlan) -> str:
    from app.server.runner import ServeError

    if not isinstance(exc, ServeError):
        return f"The API server stopped: {exc or type(exc).__name__}"
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        return (f"Port {plan.port} is already in use by another program. Choose another port, "
                "or stop that program.")
    if isinstance(cause, OSError) and cause.errno == errno.EACCES:
        return f"Port {plan.port} needs administrator rights here. Choose a port above 1024."
    return str(exc)
