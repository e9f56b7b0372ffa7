"""`main.py serve` refuses what it must refuse before loading anything."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.openai_servers import ROOT, free_port


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
