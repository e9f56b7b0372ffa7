"""EngineClient (worker QThread + host process) with the real engine: signals, coalescing, stop, crash."""

from __future__ import annotations

import time

import pytest

from app.services.engine_client import EngineClient


@pytest.fixture()
def client(qtbot):
    c = EngineClient()
    yield c
    c.shutdown()


def _load(qtbot, client, path, **kw):
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000) as blocker:
        client.load_model(str(path), n_ctx=kw.pop("n_ctx", 1024), n_threads=2, **kw)
    return blocker.args[0]


def test_generation_arrives_as_coalesced_deltas(qtbot, client, model_270m):
    info = _load(qtbot, client, model_270m)
    assert info["arch"] == "gemma3"
    deltas: list[tuple[str, str, float]] = []
    client.sig_delta.connect(lambda k, t: deltas.append((k, t, time.monotonic())))
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Once upon a time", {"temperature": 0.0, "max_tokens": 40})
    stats = done.args[0]
    assert stats["completion_tokens"] == 40
    text = "".join(t for _, t, _ in deltas)
    assert text == stats["answer"] and text.strip()
    # ~30 ms batches: far fewer signals than tokens once tokens come faster than 33/s.
    assert len(deltas) <= stats["completion_tokens"]
    assert not client.busy


def test_stop_keeps_partial_answer(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    got: list[str] = []
    client.sig_delta.connect(lambda k, t: got.append(t))
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Once upon a time", {"max_tokens": 5000})
        qtbot.waitUntil(lambda: len(got) >= 3, timeout=30_000)
        client.stop()
    assert done.args[0]["stopped"] is True
    assert done.args[0]["answer"] == "".join(got)


def test_killed_engine_emits_crash_and_restart_reloads(qtbot, client, model_270m):
    _load(qtbot, client, model_270m)
    with qtbot.waitSignal(client.sig_engine_crashed, timeout=30_000) as crashed:
        client.generate_raw("Once upon a time", {"max_tokens": 5000})
        qtbot.wait(300)
        client.kill_host_for_test()
    assert "SIGKILL" in crashed.args[0]
    assert "conversation is saved" in crashed.args[0]
    assert not client.busy
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000):
        client.restart()
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Hello", {"temperature": 0.0, "max_tokens": 4})
    assert done.args[0]["completion_tokens"] == 4


def test_load_failure_is_a_signal_not_a_crash(qtbot, client, tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with qtbot.waitSignal(client.sig_load_failed, timeout=60_000) as failed:
        client.load_model(str(bad))
    assert "x.gguf" in failed.args[0]
    assert client.host_pid is not None  # the host is still alive and usable
