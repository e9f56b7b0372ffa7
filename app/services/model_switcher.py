"""Live model switching: a fresh engine host per model, and the previous model back if loading fails.

The engine client already ends the old host on every load (that is the only sure way to give all
of its memory, GPU memory included, back). What this adds is the policy around it: ask before
cutting off a running reply, report one progress bar, and never leave the user without a model
because the new file turned out to be broken.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

log = logging.getLogger(__name__)

Confirm = Callable[[], bool]
STOP_WAIT_MS = 3000  # how long a stopped answer may take to end before the host is ended anyway


@dataclass(frozen=True)
class LoadRequest:
    """What the engine needs to load one model (n_gpu_layers -1 = every layer the build can offload)."""

    path: str
    mmproj: str | None = None
    n_ctx: int = 8192
    n_gpu_layers: int | None = None  # None: auto, as many layers as fit
    n_threads: int | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


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
        self._current: LoadRequest | None = None  # the model known to work
        self._target: LoadRequest | None = None  # being loaded now
        self._restoring: LoadRequest | None = None  # previous model coming back after a failure
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
    def current(self) -> LoadRequest | None:
        """The last model that loaded successfully (what a failed switch falls back to)."""
        return self._current

    # ----- requests ------------------------------------------------------------------------

    def switch(self, path: str, mmproj: str | None = None, n_ctx: int = 8192,
               n_gpu_layers: int | None = -1, n_threads: int | None = None,
               confirm: Confirm | None = None) -> bool:
        """Load `path` in a fresh host. False when nothing was started (declined, or busy switching).

        n_gpu_layers None means "auto": the engine host offloads as many layers as fit.
        """
        if self.switching:
            return False
        if getattr(self._client, "busy", False):
            ask = confirm or self.confirm
            # Without anyone to ask, never cut off a reply silently.
            if ask is None or not ask():
                return False
        request = LoadRequest(path, mmproj, int(n_ctx),
                              None if n_gpu_layers is None else int(n_gpu_layers), n_threads)
        if self._current is None:
            self._current = self._known_model()
        self._target = request
        self._error = ""
        self.sig_started.emit(request.name)
        self.sig_progress.emit(0.0)
        if getattr(self._client, "busy", False):
            # Let the answer end properly (its "done" carries what was written, which the chat
            # saves); the load follows the stop, or STOP_WAIT_MS later if the host says nothing.
            self._stop_timer.start()
            self._client.stop()
        else:
            self._load(request)
        return True

    def adopt(self, path: str, mmproj: str | None = None, n_ctx: int = 8192,
              n_gpu_layers: int = -1, n_threads: int | None = None) -> None:
        """Record a model loaded elsewhere (at start-up) as the one to fall back to."""
        self._current = LoadRequest(path, mmproj, n_ctx, n_gpu_layers, n_threads)

    # ----- internals -----------------------------------------------------------------------

    def _known_model(self) -> LoadRequest | None:
        """The model the client has loaded now, if the switcher has not loaded it itself."""
        info = getattr(self._client, "model_info", None)
        if not info or not info.get("path"):
            return None
        return LoadRequest(str(info["path"]), info.get("mmproj"), int(info.get("n_ctx") or 8192),
                           int(info.get("n_gpu_layers", -1)))

    def _load(self, request: LoadRequest) -> None:
        # A fresh host every time: a host that failed to load may hold half-allocated memory.
        self._client.shutdown()
        # The old host's reader may already have queued its "exited" for the client; delivered
        # after the new host starts, the client would take it for a crash of the new one.
        if isinstance(self._client, QObject):
            QCoreApplication.removePostedEvents(self._client, QEvent.Type.MetaCall)
        self._client.load_model(**{k: v for k, v in asdict(request).items()})

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
            self._current, self._target = self._target, None
            self.sig_progress.emit(1.0)
            self.sig_switched.emit(dict(info))
        elif self._restoring is not None:
            restored, self._restoring = self._restoring, None
            self.sig_failed.emit(
                f"{self._error}\n\n{restored.name} is loaded again, so you can keep chatting."
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
            log.warning("switch to %s failed: %s", failed.path, message)
            self._error = f"{failed.name} could not be loaded: {message}"
            if self._current is not None and self._current != failed:
                self._restoring = self._current
                self._load(self._current)
                return
            self._client.shutdown()
            self.sig_failed.emit(f"{self._error}\n\nChoose another model in Settings.")
        elif self._restoring is not None:
            lost, self._restoring = self._restoring, None
            self._current = None
            self._client.shutdown()
            self.sig_failed.emit(
                f"{self._error}\n\nThe previous model, {lost.name}, could not be loaded again "
                f"either ({message}). Choose a model in Settings."
            )
