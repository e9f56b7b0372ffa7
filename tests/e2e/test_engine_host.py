"""The real engine host process with the real 270M model: load, stream, stop, cache reuse, crash."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.core.engine.host_process import HostProcess
from tests.fixtures.templates import GEMMA3_TEMPLATE

GREEDY = {"temperature": 0.0, "max_tokens": 24}


@pytest.fixture()
def host():
    h = HostProcess()
    h.start()
    assert h.wait_for("ready", 60)["ev"] == "ready"
    yield h
    h.stop()


def _load(host: HostProcess, path: Path, **extra) -> dict:
    host.send({"op": "load", "path": str(path), "n_ctx": extra.pop("n_ctx", 2048), "n_threads": 2, **extra})
    return host.wait_for("loaded", 120)


def _generate(host: HostProcess, req_id: int, **body) -> tuple[list[str], dict]:
    host.send({"op": "generate", "id": req_id, **body})
    pieces: list[str] = []
    while True:
        events = host.read_events(1.0)
        assert events is not None, host.stderr_tail()
        for e in events:
            if e["ev"] == "piece":
                assert e["id"] == req_id
                pieces.append(e["text"])
            elif e["ev"] in ("done", "error"):
                return pieces, e


def test_load_and_stream_greedy_is_deterministic(host, model_270m):
    info = _load(host, model_270m)
    assert info["ev"] == "loaded", info
    assert info["info"]["arch"] == "gemma3"
    assert info["info"]["n_ctx"] == 2048
    assert info["info"]["has_template"] is False
    a, done = _generate(host, 1, prompt="The capital of France is", params=GREEDY)
    assert done["ev"] == "done", done
    stats = done["stats"]
    assert stats["completion_tokens"] == len(a) == 24
    assert stats["prompt_tokens"] > 3 and stats["ttft_ms"] > 0 and stats["decode_tok_s"] > 1
    assert "".join(a).strip()
    # Same prompt again: same greedy text, and the whole prompt but one token came from the cache.
    b, done2 = _generate(host, 2, prompt="The capital of France is", params=GREEDY)
    assert a == b
    assert done2["stats"]["cached_tokens"] == stats["prompt_tokens"] - 1


def test_stop_arrives_within_200_ms(host, model_270m):
    _load(host, model_270m)
    host.send({"op": "generate", "id": 7, "prompt": "Once upon a time", "params": {"max_tokens": 4000}})
    n_pieces = 0
    while n_pieces < 5:
        for e in host.read_events(1.0) or []:
            n_pieces += e["ev"] == "piece"
    t0 = time.monotonic()
    host.send({"op": "stop"})
    while True:
        events = host.read_events(1.0)
        assert events is not None
        done = [e for e in events if e["ev"] == "done"]
        if done:
            break
    elapsed = time.monotonic() - t0
    assert done[0]["stats"]["stopped"] is True
    assert done[0]["stats"]["finish_reason"] == "stopped"
    assert elapsed < 0.2, f"stop took {elapsed * 1000:.0f} ms"


def test_follow_up_turns_reuse_the_cache_past_the_sliding_window(host, model_270m):
    # Gemma 3 270M has a 512-token sliding window: once a conversation is longer than that, reuse
    # needs the engine's SWA checkpoints (the window cells before the edit point are gone).
    info = _load(host, model_270m, n_ctx=4096, chat_template=GEMMA3_TEMPLATE)["info"]
    assert info["has_template"] is True
    messages: list[dict] = []
    filler = "Tell me more about the history of the city, its rivers and bridges. " * 8
    results = []
    for turn in range(8):
        messages.append({"role": "user", "content": f"Turn {turn}. {filler}"})
        pieces, done = _generate(host, 10 + turn, messages=messages, params={"temperature": 0.0, "max_tokens": 40})
        assert done["ev"] == "done", done
        results.append(done["stats"])
        messages.append({"role": "assistant", "content": "".join(pieces)})
    assert results[-1]["prompt_tokens"] > 1200  # well past the window
    for prev, cur in zip(results, results[1:], strict=False):
        # Everything up to the previous user turn's end is reused; only the new turn is decoded.
        assert cur["cached_tokens"] >= prev["prompt_tokens"] - 1, (prev, cur)
        assert cur["prompt_tokens"] - cur["cached_tokens"] < 200


def test_prompt_longer_than_context_is_a_clear_error(host, model_270m):
    _load(host, model_270m, n_ctx=256)
    _, ev = _generate(host, 3, prompt="word " * 600, params=GREEDY)
    assert ev["ev"] == "error" and ev["kind"] == "context"
    assert "longer than the model's context" in ev["message"]
    # The host keeps working afterwards.
    pieces, ev = _generate(host, 4, prompt="Hello", params=GREEDY)
    assert ev["ev"] == "done" and pieces


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda src, dst: dst.write_text("this is not a model"), "is not a GGUF model file"),
        (lambda src, dst: dst.write_bytes(src.read_bytes()[: 30_000_000]), "incomplete or damaged"),
    ],
    ids=["not-gguf", "truncated"],
)
def test_bad_model_files_get_clear_messages(host, model_270m, tmp_path, make, expected):
    bad = tmp_path / "bad.gguf"
    make(model_270m, bad)
    ev = _load(host, bad)
    assert ev["ev"] == "error" and ev["kind"] == "load"
    assert expected in ev["message"], ev["message"]
    assert host.alive()


def test_unsupported_architecture_is_named(host, tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "alien.gguf"
    w = gguf.GGUFWriter(str(path), "alienformer")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ev = _load(host, path)
    assert ev["ev"] == "error" and "alienformer" in ev["message"], ev


def test_killed_host_is_reported_and_a_new_one_works(model_270m):
    h = HostProcess()
    h.start()
    h.wait_for("ready", 60)
    _load(h, model_270m)
    h.send({"op": "generate", "id": 1, "prompt": "Once upon a time", "params": {"max_tokens": 4000}})
    h.wait_for("piece", 30)
    h.kill()
    while h.read_events(1.0) is not None:
        pass
    h.reap()
    assert h.returncode() == -9
    h.start()
    h.wait_for("ready", 60)
    assert _load(h, model_270m)["ev"] == "loaded"
    h.stop()
