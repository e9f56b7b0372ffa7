"""`main.py tools list|call` as real subprocesses against the real mcp-server-time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEMMA_DESKTOP_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "main.py", "tools", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_config(tmp_path: Path) -> Path:
    config = {
        "mcpServers": {
            "time": {
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                "env": {},
            },
            "broken": {"command": str(tmp_path / "missing-server")},
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config))
    return path


def test_list_shows_tools_and_failed_servers(private_folders: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = run("list", "--mcp-config", str(config), "--json", home=private_folders)
    assert done.returncode == 1, done.stderr  # one server failed
    servers = {s["server"]: s for s in json.loads(done.stdout)}
    assert servers["time"]["state"] == "running"
    tools = {t["name"]: t for t in servers["time"]["tools"]}
    assert tools["get_current_time"]["input_schema"]["required"] == ["timezone"]
    assert servers["broken"]["state"] == "failed"
    assert "missing-server" in servers["broken"]["reason"]
    text = run("list", "--mcp-config", str(config), home=private_folders)
    assert "time: running\n  get_current_time - " in text.stdout


def test_call_returns_the_result_and_errors_exit_nonzero(
    private_folders: Path, tmp_path: Path
) -> None:
    config = str(write_config(tmp_path))
    args = '{"timezone": "America/New_York"}'
    done = run(
        "call",
        "time/get_current_time",
        "--args",
        args,
        "--mcp-config",
        config,
        "--json",
        home=private_folders,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["is_error"] is False and result["content"]["timezone"] == "America/New_York"
    bad = run(
        "call",
        "get_current_time",
        "--args",
        '{"timezone": "Nowhere/X"}',
        "--mcp-config",
        config,
        home=private_folders,
    )
    assert bad.returncode == 1 and "Nowhere/X" in bad.stdout
    missing = run("call", "nope", "--mcp-config", config, home=private_folders)
    assert missing.returncode == 2 and "no tool named 'nope'" in missing.stderr
    assert "broken (" in missing.stderr
    assert run("call", "x", "--args", "[1]", home=private_folders).returncode == 2
