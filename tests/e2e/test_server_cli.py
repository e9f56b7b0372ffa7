"""`main.py serve` refuses what it must refuse before loading anything, and ends cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.openai_servers import ROOT, free_port, gemma_serve, running


def _serve(*args: str, home) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "GEMMA_DESKTOP_HOME": str(home)}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "serve", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_other_addresses_are_refused_without_a_key(model_270m, tmp_path):
    r = _serve("--model", str(model_270m), "--host", "0.0.0.0", "--port", str(free_port()),
               home=tmp_path)
    assert r.returncode == 2 and "API key is required" in r.stderr


def test_an_unknown_model_says_so(tmp_path):
    r = _serve("--model", "no-such-model.gguf", home=tmp_path)
    assert r.returncode == 2 and "no model 'no-such-model.gguf'" in r.stderr


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _gone(pid: int) -> bool:
    """Neither running nor a zombie waiting for a parent that never reaped it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == "X"


def test_sigterm_stops_the_engine_host_before_serve_exits(tmp_path):
    """A service manager stops `serve` with SIGTERM: the engine host must be ended and reaped by
    then, and the clients' media removed (uvicorn raised the signal again after its shutdown,
    and the process died there, leaving the host running on alone for seconds, its CPU use
    landing on whatever ran next)."""
    port = free_port()
    home = tmp_path / "home"
    with running(gemma_serve(synthetic_gemma4()["model"], port), "/health", port,
                 tmp_path / "serve.log", {"GEMMA_DESKTOP_HOME": str(home)}) as proc:
        (host,) = _children(proc.pid)
        media = home / "cache" / "server-media"
        media.mkdir(parents=True, exist_ok=True)
        (media / "upload.png").write_bytes(b"a client's file")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "serve.log").read_text()[-2000:]
        assert _gone(host), Path(f"/proc/{host}/stat").read_text()
        assert not media.exists()
