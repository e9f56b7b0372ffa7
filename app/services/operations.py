"""One way to run background work (after Anki's QueryOp): operation, success, failure, cancel.

    op = Operation(lambda ctx: slow_thing(ctx), name="export")
    op.sig_succeeded.connect(...); op.sig_failed.connect(...)   # on the GUI thread
    op.start()

The work runs on a worker thread and gets an OpContext to report progress or partial items and to
see a cancel. Every signal arrives on the thread that owns the Operation (the GUI thread). Starting
again while a run is under way cancels that run, and a generation counter drops whatever it still
delivers, so a stale result can never overwrite a fresh one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)


class Cancelled(Exception):  # noqa: N818 - control flow, not a failure
    """Raised by OpContext.check() once the operation was cancelled."""


class _Relay(QObject):
    # Emitted on the worker thread; queued delivery brings them to the Operation's thread.
    progress = Signal(int, float)
    item = Signal(int, object)
    succeeded = Signal(int, object)
    failed = Signal(int, object)  # the exception
    cancelled = Signal(int)


class OpContext:
    """What the work sees: progress and partial items to report, and whether it was cancelled."""

    def __init__(self, relay: _Relay, gen: int, cancel: threading.Event) -> None:
        self._relay, self._gen, self.cancel_event = relay, gen, cancel

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Stop here (raise Cancelled) if the operation was cancelled."""
        if self.cancel_event.is_set():
            raise Cancelled()

    def progress(self, fraction: float) -> None:
        self._relay.progress.emit(self._gen, float(fraction))

    def item(self, value: Any) -> None:
        """A partial result (one file's facts of many): sig_item on the GUI thread."""
        self._relay.item.emit(self._gen, value)


def user_message(exc: BaseException) -> str:
    """The words for a failure: the error's own user_message, else its text, else its type."""
    return getattr(exc, "user_message", None) or str(exc) or exc.__class__.__name__


class Operation(QObject):
    """Runs ``work(ctx)`` on a worker thread; results, failures and progress come back as signals."""

    sig_progress = Signal(float)
    sig_item = Signal(object)
    sig_succeeded = Signal(object)  # what work returned
    sig_failed = Signal(str)  # a message for the user
    sig_cancelled = Signal()

    def __init__(
        self,
        work: Callable[[OpContext], Any],
        *,
        name: str = "operation",
        failure_message: Callable[[BaseException], str] = user_message,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._work, self._name, self._failure_message = work, name, failure_message
        self._gen = 0
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._relay = _Relay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.item.connect(self._on_item)
        self._relay.succeeded.connect(self._on_succeeded)
        self._relay.failed.connect(self._on_failed)
        self._relay.cancelled.connect(self._on_cancelled)

    def start(self) -> None:
        """Run the work (again); a run still under way is cancelled and its results dropped."""
        self._cancel.set()
        self._gen += 1
        self._cancel = threading.Event()
        ctx = OpContext(self._relay, self._gen, self._cancel)
        self._thread = threading.Thread(target=self._run, args=(ctx,), name=self._name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the work to stop (it sees ctx.cancelled); sig_cancelled follows if it does."""
        self._cancel.set()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the worker thread ends (a window closing); True if it did."""
        if self._thread is not None:
            self._thread.join(msecs / 1000)
        return not self.is_running()

    def _run(self, ctx: OpContext) -> None:
        try:
            result = self._work(ctx)
        except Cancelled:
            self._relay.cancelled.emit(ctx._gen)
        except Exception as exc:  # noqa: BLE001 - the one place a worker's failure becomes a message
            log.exception("%s failed", self._name)
            self._relay.failed.emit(ctx._gen, exc)
        else:
            self._relay.succeeded.emit(ctx._gen, result)

    @Slot(int, float)
    def _on_progress(self, gen: int, fraction: float) -> None:
        if gen == self._gen:
            self.sig_progress.emit(fraction)

    @Slot(int, object)
    def _on_item(self, gen: int, value: Any) -> None:
        if gen == self._gen:
            self.sig_item.emit(value)

    @Slot(int, object)
    def _on_succeeded(self, gen: int, result: Any) -> None:
        if gen == self._gen:
            self.sig_succeeded.emit(result)

    @Slot(int, object)
    def _on_failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._gen:
            self.sig_failed.emit(self._failure_message(exc))

    @Slot(int)
    def _on_cancelled(self, gen: int) -> None:
        if gen == self._gen:
            self.sig_cancelled.emit()
