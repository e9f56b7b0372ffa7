"""`main.py chat --mcp-config`: the agent loop through the real engine host, the real template and
the real mcp-server-time over stdio. A grammar makes the synthetic Gemma 4 call the tool, as the
thinking tests force thinking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.gemma4 import synthetic_gemma4

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CALL = '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|>'
GRAMMAR = "root ::= " + json.dumps(CALL) + "\n"


def _chat(tmp_path: Path, *extra: str) -> list[dict]:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"time": {
        "command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}}}))
    grammar = tmp_path / "call.gbnf"
    grammar.write_text(GRAMMAR)
    r = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", "--model", str(synthetic_gemma4()["model"]),
         "--prompt", "What time is it in Tokyo?", "--json", "--temperature", "0", "--ctx", "2048",
         "--threads", "1", "--grammar", str(grammar), "--mcp-config", str(config),
         "--max-tool-steps", "1", *extra],
        capture_output=True, text=True, timeout=300, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_the_model_calls_the_time_server_and_reads_the_result(tmp_path):
    events = _chat(tmp_path, "--allow-tools")
    calls = [e for e in events if e["event"] == "tool_call"]
    assert calls and all(e["text"] == CALL for e in calls)  # streamed as one block
    assert all(CALL not in e.get("text", "") for e in events if e["event"] == "answer")
    results = [e for e in events if e["event"] == "tool_result"]
    first, second = results
    # Step 1 ran for real: mcp-server-time answered for Tokyo.
    assert first["name"] == "get_current_time" and first["arguments"] == {"timezone": "Asia/Tokyo"}
    assert not first["is_error"] and first["content"]["datetime"].endswith("+09:00")
    # The model was given the result and called again: past the step limit that one did not run.
    assert second["is_error"] and "limit" in json.dumps(second["content"])
    assert events[-1]["event"] == "done"


def test_without_consent_nothing_runs(tmp_path):
    events = _chat(tmp_path)  # no --allow-tools and no terminal to ask
    denied = [e for e in events if e["event"] == "tool_denied"]
    results = [e for e in events if e["event"] == "tool_result"]
    assert denied and "--allow-tools" in denied[0]["reason"]
    assert results[0]["is_error"] and "denied" in json.dumps(results[0]["content"])
