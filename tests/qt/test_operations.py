"""app.services.operations: results on the GUI thread, failures as messages, cancel, stale drops."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from app.services.operations import OpContext, Operation


def test_result_and_progress_arrive_on_the_gui_thread(qtbot) -> None:
    seen: list[tuple[str, object, bool]] = []

    def on_gui(kind: str):
        gui = QApplication.instance().thread()  # type: ignore[union-attr]
        return lambda value: seen.append((kind, value, QThread.currentThread() is gui))

    def work(ctx: OpContext) -> str:
        assert QThread.currentThread() is not QApplication.instance().thread()  # type: ignore[union-attr]
        ctx.progress(0.5)
        ctx.item("partial")
        return "done"

    op = Operation(work, name="test-op")
    op.sig_progress.connect(on_gui("progress"))
    op.sig_item.connect(on_gui("item"))
    with qtbot.waitSignal(op.sig_succeeded, timeout=5000) as done:
        op.sig_succeeded.connect(on_gui("result"))
        op.start()
    assert done.args == ["done"]
    assert seen == [("progress", 0.5, True), ("item", "partial", True), ("result", "done", True)]
    assert op.wait(5000) and not op.is_running()


def test_a_failure_becomes_a_message(qtbot) -> None:
    class Refused(Exception):
        user_message = "The disk is full — free some space."

    def work(ctx: OpContext) -> None:
        raise Refused("ENOSPC")

    op = Operation(work)
    with qtbot.waitSignal(op.sig_failed, timeout=5000) as failed:
        op.start()
    assert failed.args == ["The disk is full — free some space."]
    plain = Operation(lambda ctx: 1 / 0, failure_message=lambda exc: f"failed: {type(exc).__name__}")
    with qtbot.waitSignal(plain.sig_failed, timeout=5000) as failed:
        plain.start()
    assert failed.args == ["failed: ZeroDivisionError"]


def test_cancel_is_seen_by_the_work(qtbot) -> None:
    running = threading.Event()

    def work(ctx: OpContext) -> str:
        running.set()
        ctx.cancel_event.wait(5)
        ctx.check()
        return "not cancelled"

    op = Operation(work)
    succeeded: list[object] = []
    op.sig_succeeded.connect(succeeded.append)
    with qtbot.waitSignal(op.sig_cancelled, timeout=5000):
        op.start()
        assert running.wait(5)
        op.cancel()
    assert succeeded == []


def test_a_stale_run_cannot_overwrite_a_fresh_one(qtbot) -> None:
    release_first = threading.Event()
    calls: list[int] = []

    def work(ctx: OpContext) -> str:
        calls.append(1)
        if len(calls) == 1:
            release_first.wait(5)  # the first run finishes last, ignoring its cancel
            return "stale"
        return "fresh"

    op = Operation(work)
    results: list[object] = []
    op.sig_succeeded.connect(results.append)
    op.start()
    first = op._thread
    with qtbot.waitSignal(op.sig_succeeded, timeout=5000):
        op.start()
    release_first.set()
    assert first is not None
    first.join(5)
    qtbot.waitUntil(lambda: not op.is_running(), timeout=5000)
    QApplication.processEvents()  # deliver anything the stale run queued
    assert results == ["fresh"]
