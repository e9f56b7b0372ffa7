"""EngineClient (host process read by the GUI thread) with the real engine: signals, batches, stop, crash."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from app.services.engine_client import EngineBusy


def _load(qtbot, client, path, **kw):
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000) as blocker:
        client.load_model(str(path), n_ctx=kw.pop("n_ctx", 1024), n_threads=2, **kw)
    return blocker.args[0]


def test_generation_arrives_as_coalesced_deltas(qtbot, client, model_270m):
    info = _load(qtbot, client, model_270m)
    assert info["arch"] == "gemma3"
    deltas: list[tuple[int, str, str, float]] = []
    client.sig_delta.connect(lambda i, k, t: deltas.append((i, k, t, time.monotonic())))
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        req_id = client.generate_raw("Once upon a time", {"temperature": 0.0, "max_tokens": 40})
    reply = done.args[0]
    assert reply.id == req_id and reply.stats.completion_tokens == 40
    assert {i for i, *_ in deltas} == {req_id}
    text = "".join(t for _, _, t, _ in deltas)
    assert text == reply.answer and text.strip()
    # The host sends text in ~50 ms batches: fewer signals than tokens once tokens come faster
    # than 20/s.
    assert len(deltas) <= reply.stats.completion_tokens
    assert not client.busy


def test_stop_keeps_partial_answer(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    got: list[str] = []
    client.sig_delta.connect(lambda _i, k, t: got.append(t))
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Once upon a time", {"max_tokens": 5000})
        qtbot.waitUntil(lambda: len(got) >= 3, timeout=30_000)
        client.stop()
    assert done.args[0].stats.stopped is True
    assert done.args[0].answer == "".join(got)


def test_generate_refuses_while_an_answer_runs_and_ids_keep_answers_apart(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    seen: list[tuple[int, str]] = []
    client.sig_delta.connect(lambda i, _k, t: seen.append((i, t)))
    first = client.generate_raw("Once upon a time", {"max_tokens": 5000})
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30_000)
    with pytest.raises(EngineBusy):
        client.generate_raw("The sky is", {"max_tokens": 5})
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as stopped:
        client.stop()
    assert stopped.args[0].id == first and not client.busy
    # Text of the stopped answer still in flight can never reach the next one.
    seen.clear()
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        second = client.generate_raw("The sky is", {"temperature": 0.0, "max_tokens": 8})
    assert second != first and done.args[0].id == second
    assert seen and {i for i, _ in seen} == {second}
    assert "".join(t for _, t in seen) == done.args[0].answer


def test_shutdown_does_not_block_the_gui_thread(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    client.generate_raw("Once upon a time", {"max_tokens": 5000})
    qtbot.waitUntil(lambda: client.reply is not None and client.reply.answer != "", timeout=30_000)
    pid = client.host_pid
    t0 = time.monotonic()
    client.shutdown()
    assert time.monotonic() - t0 < 0.05  # the host is reaped in the background
    assert client.wait_closed(15)
    assert pid is not None and not Path(f"/proc/{pid}").exists()


def _threads_named(name: str) -> int:
    return sum(thread.name == name for thread in threading.enumerate())


def test_the_gui_thread_reads_the_host_and_a_thread_takes_over_at_its_end(qtbot, client, model_270m):
    # While the host runs, its events are read by the GUI thread (one wake-up per message);
    # once it is asked to end, a reader thread delivers the last events and Exited.
    _load(qtbot, client, model_270m)
    with qtbot.waitSignal(client.sig_finished, timeout=60_000):
        client.generate_raw("Once upon a time", {"temperature": 0.0, "max_tokens": 24})
    while_running = _threads_named("engine-events")
    pid = client.host_pid
    client.shutdown()
    assert client.wait_closed(15)
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert _threads_named("engine-events") == while_running  # no reader thread while it ran


def test_shutdown_from_a_finished_answer_inside_the_read(qtbot, client, model_270m):
    # A listener that ends the host while the GUI thread is inside the read that delivered the
    # answer's end (as a model switch right after an answer does): the rest of that read is still
    # routed, a reader thread takes over, and the host is gone.
    _load(qtbot, client, model_270m)
    pid = client.host_pid
    ended: list[str] = []

    def on_finished(reply) -> None:
        ended.append(reply.answer)
        client.shutdown()

    client.sig_finished.connect(on_finished)
    with qtbot.waitSignal(client.sig_finished, timeout=60_000):
        client.generate_raw("Once upon a time", {"temperature": 0.0, "max_tokens": 8})
    assert ended and ended[0]
    assert client.wait_closed(15)
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert client.host_pid is None and not client.busy


def test_killed_engine_emits_crash_and_restart_reloads(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    with qtbot.waitSignal(client.sig_engine_crashed, timeout=30_000) as crashed:
        client.generate_raw("Once upon a time", {"max_tokens": 5000})
        qtbot.waitUntil(lambda: client.reply is not None and client.reply.answer != "", timeout=30_000)
        pid = client.host_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as a native crash would
    assert "SIGKILL" in crashed.args[0]
    assert "conversation is saved" in crashed.args[0]
    assert not client.busy
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000):
        client.restart()
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Hello", {"temperature": 0.0, "max_tokens": 4})
    assert done.args[0].stats.completion_tokens == 4


def test_load_failure_is_a_signal_not_a_crash(qtbot, client, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with qtbot.waitSignal(client.sig_load_failed, timeout=60_000) as failed:
        client.load_model(str(bad))
    assert "x.gguf" in failed.args[0]
    assert client.host_pid is not None  # the host is still alive and usable
