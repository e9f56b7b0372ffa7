"""`python main.py chat` end to end: a real host, the real 270M model, JSON events on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _chat(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


def test_chat_json_streams_answer_then_done(model_270m):
    r = _chat("--model", str(model_270m), "--prompt", "The sky is", "--json", "--temperature", "0",
              "--max-tokens", "12", "--ctx", "1024")
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["event"] == "done"
    answers = [e for e in events if e["event"] == "answer"]
    assert answers and "".join(e["text"] for e in answers).strip()
    stats = events[-1]["stats"]
    assert stats["completion_tokens"] == 12
    assert stats["prompt_tokens"] > 0 and stats["ttft_ms"] > 0 and stats["decode_tok_s"] > 0
    assert {e["event"] for e in events} <= {"loaded", "answer", "thinking", "done"}
    loaded = events[0]
    assert loaded["event"] == "loaded" and loaded["model"]["n_ctx"] == 1024
    assert loaded["model"]["path"] == str(model_270m)


def test_chat_plain_prints_answer_on_stdout(model_270m):
    r = _chat("--model", str(model_270m), "--prompt", "One, two, three,", "--temperature", "0",
              "--max-tokens", "8", "--seed", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip()
    assert "tok/s" in r.stderr


def test_chat_errors_exit_nonzero_with_json_message(tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("hello")
    r = _chat("--model", str(bogus), "--prompt", "hi", "--json")
    assert r.returncode != 0
    ev = json.loads(r.stdout.splitlines()[-1])
    assert ev["event"] == "error" and "not a GGUF" in ev["message"]


def test_chat_prompt_longer_than_context(model_270m):
    r = _chat("--model", str(model_270m), "--prompt", "word " * 400, "--ctx", "128", "--json")
    assert r.returncode != 0
    ev = json.loads(r.stdout.splitlines()[-1])
    assert ev["event"] == "error" and "context" in ev["message"]
