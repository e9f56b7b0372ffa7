"""Live model switching: a fresh engine host per model, and the previous model back if loading fails.

The engine client already ends the old host on every load (that is the only sure way to give all
of its memory, GPU memory included, back). What this adds is the policy around it: ask before
cutting off a running reply, report one progress bar, and never leave the user without a model
because the new file turned out to be broken.

A model on a remote server (Settings → Model → Add a server) is switched to the same way: the
client checks that the server answers and has the model; if it does not, the previous model
(local or remote) comes back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.engine.messages import DEFAULT_N_CTX, LoadModel
from app.core.engine.records import ModelInfo
from app.core.remote.servers import RemoteServer

log = logging.getLogger(__name__)

Target = LoadModel | RemoteServer


def _name(request: Target) -> str:
    return request.label if isinstance(request, RemoteServer) else os.path.basename(request.path)

Confirm = Callable[[], bool]
STOP_WAIT_MS = 3000  # how long a stopped answer may take to end before the host is ended anyway


class ModelSwitcher(QObject):
    """Switch the engine to another model; on failure bring the previous one back.

    Signals: sig_progress(fraction 0..1) while the new model loads, sig_switched(model info)
    when it is ready, sig_failed(message) when it could not be loaded (emitted once the previous
    model is back, or once it is clear that it cannot come back either).
    """

    sig_started = Signal(str)  # file name of the model being loaded
    sig_progress = Signal(float)
    sig_switched = Signal(dict)
    sig_failed = Signal(str)

    def __init__(self, client: Any, confirm: Confirm | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self.confirm = confirm
        self._current: LoadModel | None = None  # the local model known to work
        self._remote: RemoteServer | None = None  # the server in use now (instead of _current)
        self._target: Target | None = None  # being loaded now
        self._restoring: Target | None = None  # previous model coming back after a failure
        self._error = ""
        client.sig_load_progress.connect(self._on_client_load_progress)
        client.sig_loaded.connect(self._on_client_loaded)
        client.sig_load_failed.connect(self._on_client_load_failed)
        client.sig_engine_crashed.connect(self._on_client_engine_crashed)
        client.sig_finished.connect(self._on_client_generation_ended)
        client.sig_failed.connect(self._on_client_generation_ended)
        self._stop_timer = QTimer(self)
        self._stop_timer.setSingleShot(True)
        self._stop_timer.setInterval(STOP_WAIT_MS)
        self._stop_timer.timeout.connect(self._on_stop_timer_timeout)

    # ----- state ---------------------------------------------------------------------------

    @property
    def switching(self) -> bool:
        """A new model (or the previous one, after a failure) is loading."""
        return self._target is not None or self._restoring is not None

    @property
    def current(self) -> LoadModel | None:
        """The last local model that loaded successfully (what a failed switch falls back to,
        unless a server was in use: see `current_remote`)."""
        return self._current

    @property
    def current_remote(self) -> RemoteServer | None:
        """The server the chat runs on now; None while a local model answers."""
        return self._remote

    def _working(self) -> Target | None:
        return self._remote or self._current

    # ----- requests ------------------------------------------------------------------------

    def switch(self, path: str, mmproj: str | None = None, n_ctx: int = DEFAULT_N_CTX,
               n_gpu_layers: int | None = -1, n_threads: int | None = None,
               confirm: Confirm | None = None, kv_type: str = "f16") -> bool:
        """Load `path` in a fresh host. False when nothing was started (declined, or busy switching).

        n_gpu_layers None means "auto": the engine host offloads as many layers as fit.
        """
        request = LoadModel(path, mmproj, int(n_ctx),
                            None if n_gpu_layers is None else int(n_gpu_layers), n_threads,
                            kv_type=kv_type)
        return self._begin(request, confirm)

    def switch_remote(self, server: RemoteServer, confirm: Confirm | None = None) -> bool:
        """Run the chat on `server` (checked first; the previous model comes back if it fails)."""
        return self._begin(server, confirm)

    def _begin(self, request: Target, confirm: Confirm | None) -> bool:
        if self.switching:
            return False
        if self._client.busy:
            ask = confirm or self.confirm
            # Without anyone to ask, never cut off a reply silently.
            if ask is None or not ask():
                return False
        if self._current is None:
            self._current = self._known_model()
        if self._remote is None and self._client.remote is not None:
            self._remote = self._client.remote
        self._target = request
        self._error = ""
        self.sig_started.emit(_name(request))
        self.sig_progress.emit(0.0)
        if self._client.busy:
            # Let the answer end properly (its "done" carries what was written, which the chat
            # saves); the load follows the stop, or STOP_WAIT_MS later if the host says nothing.
            self._stop_timer.start()
            self._client.stop()
        else:
            self._load(request)
        return True

    # ----- internals -----------------------------------------------------------------------

    def _known_model(self) -> LoadModel | None:
        """The model the client has loaded now (with its projector), if the switcher did not load it."""
        info: ModelInfo | None = self._client.model
        if info is None or self._client.remote is not None:
            return None
        return LoadModel(info.path, info.mmproj, info.n_ctx, info.n_gpu_layers,
                         info.n_threads or None, kv_type=info.kv_type)

    def _load(self, request: Target) -> None:
        # A fresh host every time: a host that failed to load may hold half-allocated memory.
        # Events still queued from the old host are dropped by the client (it knows its hosts).
        self._client.shutdown()
        if isinstance(request, RemoteServer):
            self._client.use_remote(request)
        else:
            self._client.load_model(**asdict(request))

    def _on_client_generation_ended(self, *_args: object) -> None:
        if self._stop_timer.isActive():
            self._stop_timer.stop()
            # Queued: the client finishes handling the event before its host is replaced.
            QTimer.singleShot(0, self, self._on_stop_timer_timeout)

    def _on_stop_timer_timeout(self) -> None:
        if self._target is not None:
            self._load(self._target)

    def _on_client_load_progress(self, fraction: float) -> None:
        if self._target is not None:
            self.sig_progress.emit(max(0.0, min(1.0, float(fraction))))

    def _on_client_loaded(self, info: dict) -> None:
        if self._target is not None:
            loaded, self._target = self._target, None
            if isinstance(loaded, RemoteServer):
                self._remote = loaded
            else:
                self._current, self._remote = loaded, None
            self.sig_progress.emit(1.0)
            self.sig_switched.emit(dict(info))
        elif self._restoring is not None:
            restored, self._restoring = self._restoring, None
            if isinstance(restored, RemoteServer):
                self._remote = restored
            else:
                self._current, self._remote = restored, None
            self.sig_failed.emit(
                f"{self._error}\n\n{_name(restored)} is loaded again, so you can keep chatting."
            )

    def _on_client_load_failed(self, message: str) -> None:
        self._fail(message)

    def _on_client_engine_crashed(self, message: str) -> None:
        if self.switching:
            summary = message.partition("\n\n")[0]
            self._fail(f"The engine stopped while loading the model. {summary}".strip())

    def _fail(self, message: str) -> None:
        if self._target is not None:
            failed, self._target = self._target, None
            log.warning("switch to %s failed: %s", _name(failed), message)
            self._error = f"{_name(failed)} could not be loaded: {message}"
            back = self._working()
            if back is not None and back != failed:
                self._restoring = back
                self._load(back)
                return
            self._remote = None
            self._client.shutdown()
            self.sig_failed.emit(f"{self._error}\n\nChoose another model in Settings.")
        elif self._restoring is not None:
            lost, self._restoring = self._restoring, None
            if isinstance(lost, RemoteServer):
                self._remote = None
            else:
                self._current = None
            self._client.shutdown()
            self.sig_failed.emit(
                f"{self._error}\n\nThe previous model, {_name(lost)}, could not be loaded again "
                f"either ({message}). Choose a model in Settings."
            )
