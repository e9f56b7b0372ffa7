"""A CPU variant that crashes: the engine notices, takes the next variant, and remembers it.

The crashing variant is real: a library built here with gcc, named like ggml's CPU variants and
scoring higher than any of them, whose backend init dereferences NULL. It sits in a folder the
loader searches first. Needs a GGML_BACKEND_DL build (setup.sh's default on Linux).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.engine import backends
from app.services.engine_client import EngineClient
from tests.fixtures.templates import GEMMA3_TEMPLATE

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

CRASHING_VARIANT = r"""
int ggml_backend_score(void) { return 1 << 30; }     /* outranks every real variant */
void *ggml_backend_init(void) { volatile int *p = 0; *p = 1; return 0; }   /* SIGSEGV */
"""


@pytest.fixture()
def crashing_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """libggml-cpu-zzcrash.so, in a folder the loader searches before the wheel's own."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "crash.c").write_text(CRASHING_VARIANT)
    gcc = shutil.which("gcc")
    assert gcc, "gcc is installed by packaging/setup.sh (build-essential)"
    subprocess.run([gcc, "-shared", "-fPIC", "-O0", "-o", str(folder / "libggml-cpu-zzcrash.so"),
                    str(folder / "crash.c")], check=True, timeout=60)
    monkeypatch.setenv(backends.DIRS_VAR, str(folder))
    return "cpu-zzcrash"


def test_a_crashing_cpu_variant_is_skipped_and_remembered(qtbot, crashing_variant, model_270m):
    lib = Path(__import__("llama_cpp").__file__).parent / "lib"
    assert (lib.parent.parent / "bin").is_dir() or any(lib.glob("libggml-cpu-*")), (
        "this llama-cpp-python has no CPU variant modules: run packaging/setup.sh")
    client = EngineClient()
    crashes: list[str] = []
    client.sig_engine_crashed.connect(crashes.append)
    try:
        with qtbot.waitSignal(client.sig_loaded, timeout=120_000):
            client.load_model(str(model_270m), n_ctx=1024, n_threads=2,
                              chat_template=GEMMA3_TEMPLATE)
        assert not crashes, crashes  # the crash was handled by retrying, not shown to the user
        with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
            client.generate([{"role": "user", "content": "Hi"}], False,
                            {"temperature": 0.0, "max_tokens": 2})
        stats = done.args[0].stats
        assert stats.completion_tokens >= 1
        assert stats.cpu_variant not in ("", "built-in", "none", "zzcrash"), stats.cpu_variant
    finally:
        client.shutdown()
        client.wait_closed()

    # The machine's choice is remembered: the next host goes straight to the working variant.
    state = json.loads((Path(os.environ["GEMMA_DESKTOP_HOME"]) / "cache" / "cpu-variant.json")
                       .read_text())
    assert state["failed"] == [crashing_variant]
    assert state["works"] == f"cpu-{stats.cpu_variant}"
    assert state["trying"] is None

    doctor = subprocess.run([sys.executable, "main.py", "doctor", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0, doctor.stderr[-2000:]
    report = json.loads(doctor.stdout)["backends"]
    assert report["cpu_variant"] == stats.cpu_variant
    assert "cpu-zzcrash" in report["cpu_note"] and "crashed" in report["cpu_note"]
    text = subprocess.run([sys.executable, "main.py", "doctor"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120).stdout
    assert f"CPU variant: {stats.cpu_variant}" in text and "crashed" in text
