"""EngineClient (worker QThread + host process) with the real engine: signals, coalescing, stop, crash."""

from __future__ import annotations

import os
import signal
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
    # ~30 ms batches: far fewer signals than tokens once tokens come faster than 33/s.
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
