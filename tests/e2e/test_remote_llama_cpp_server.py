"""The app's remote client against llama-cpp-python's own server (`python -m llama_cpp.server`)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.core.engine.records import SamplingParams
from app.core.remote.client import Endpoint, RemoteChat, RemoteError
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.openai_servers import ROOT, free_port, llama_cpp_server, running

THINK_THEN_ANSWER = 'root ::= "<|channel>thought\\n" "plan it" "<channel|>" "Hello there"'
HI = [{"role": "user", "content": "Hi"}]
STORY = [{"role": "user", "content": "Write a long story about a dog."}]


@pytest.fixture(scope="module")
def gemma4_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    with running(llama_cpp_server(synthetic_gemma4()["model"], port, log), "/v1/models", port, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture()
def small_server(model_270m, tmp_path):
    """The real 270M (a base model: the server is told its Gemma chat format)."""
    port = free_port()
    log = tmp_path / "server.log"
    cmd = llama_cpp_server(model_270m, port, log, extra=["--n_threads", "2", "--chat_format", "gemma"])
    with running(cmd, "/v1/models", port, log) as proc:
        yield f"http://127.0.0.1:{port}", proc


@pytest.mark.parametrize("stream", [True, False])
def test_thinking_is_read_from_gemma_markers_in_content(gemma4_server, stream):
    deltas: list[tuple[str, str]] = []
    with RemoteChat(Endpoint(gemma4_server)) as chat:
        reply = chat.chat("gemma4", HI, True, SamplingParams(max_tokens=40, grammar=THINK_THEN_ANSWER),
                          stream=stream, on_delta=lambda k, t: deltas.append((k, t)))
    assert (reply.thinking, reply.answer) == ("plan it", "Hello there")
    assert all("<" not in t for _, t in deltas)
    assert reply.stats is not None and reply.stats.finish_reason == "stop"


def test_stats_and_stop_mid_stream(small_server):
    url, _proc = small_server
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    with RemoteChat(Endpoint(url)) as chat:
        reply = chat.chat("m", STORY, params=greedy)
        assert reply.stats is not None and reply.answer
        assert reply.stats.completion_tokens == 8 and reply.stats.finish_reason == "length"
        assert reply.stats.ttft_ms > 0 and reply.stats.decode_tok_s > 0
        seen = threading.Event()
        text: list[str] = []

        def on_delta(_kind: str, piece: str) -> None:
            text.append(piece)
            if len("".join(text)) > 10 and not seen.is_set():
                seen.set()
                chat.stop()  # as the Stop button does, from the same callback thread

        reply = chat.chat("m", STORY, params=SamplingParams(temperature=0.0, max_tokens=400),
                          on_delta=on_delta)
        assert seen.is_set() and reply.stats is not None and reply.stats.stopped
        assert reply.answer == "".join(text) and reply.stats.finish_reason == "stopped"


def test_a_dropped_stream_keeps_the_partial_answer(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    partial: list[str] = []
    with running(llama_cpp_server(synthetic_gemma4()["model"], port, log), "/v1/models", port,
                 log) as proc:

        def on_delta(_kind: str, text: str) -> None:
            partial.append(text)
            if len("".join(partial)) > 12 and proc.poll() is None:
                proc.kill()  # the server dies mid-answer, as a crashed machine would
                proc.wait(10)

        with RemoteChat(Endpoint(f"http://127.0.0.1:{port}")) as chat, \
                pytest.raises(RemoteError) as err:
            chat.chat("m", HI, params=SamplingParams(max_tokens=900), on_delta=on_delta)
    assert err.value.kind == "dropped" and "partial answer is kept" in err.value.message
    assert err.value.reply.answer + err.value.reply.thinking == "".join(partial)
    assert len("".join(partial)) > 12


def test_connection_refused_says_so():
    port = free_port()
    with RemoteChat(Endpoint(f"http://127.0.0.1:{port}")) as chat, pytest.raises(RemoteError) as err:
        chat.chat("m", HI)
    assert err.value.kind == "connection" and "refused" in err.value.message


def test_cli_chat_through_the_server(gemma4_server, tmp_path: Path):
    grammar = tmp_path / "g.gbnf"
    grammar.write_text(THINK_THEN_ANSWER)
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "chat", "--server", gemma4_server,
                        "--model", "gemma4", "--prompt", "Hi", "--think", "--json",
                        "--grammar", str(grammar), "--max-tokens", "40"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert "".join(e["text"] for e in events if e["event"] == "thinking") == "plan it"
    assert "".join(e["text"] for e in events if e["event"] == "answer") == "Hello there"
    assert events[-1]["event"] == "done" and events[-1]["stats"]["completion_tokens"] > 0
    port = free_port()
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "chat", "--server",
                        f"http://127.0.0.1:{port}", "--model", "x", "--prompt", "Hi", "--json"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1
    assert json.loads(r.stdout.splitlines()[-1])["event"] == "error"
