"""`main.py --self-test` from source: the real engine host, the tiny synthetic Gemma 4, a real
PulseAudio microphone; plus the failures it must name, and the About box it paints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.pulse import RATE, PulseServer, pulse  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run_self_test(*extra: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The same command a user types, in its own process (it builds its own QApplication)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--self-test", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.3 * np.sin(2 * np.pi * 440.0 * t)


def test_self_test_passes_with_microphone(pulse: PulseServer) -> None:  # noqa: F811
    assert pulse.feeder is not None
    # The microphone step comes after load and generation: keep a tone playing until then.
    pulse.feeder.play_samples(tone(120.0))
    try:
        result = run_self_test()
    finally:
        pulse.feeder.clear()
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    for step in ("environment", "llama.cpp", "widgets", "engine", "model", "generate", "microphone"):
        assert lines[step].split()[0] == "ok", lines[step]
    assert "gemma4" in lines["model"]
    # The grammar forces "thought, then answer": both halves arrived, no marker leaked.
    assert "thinking '" in lines["generate"] and "answer '" in lines["generate"]
    # Where it ran, from llama.cpp's own offload count and the CPU variant the host loaded.
    assert " on CPU (CPU variant " in lines["generate"] or " layers on " in lines["generate"]
    assert "recorded 1." in lines["microphone"] or "recorded 0.9" in lines["microphone"]
    assert ".wav" in lines["microphone"]
    assert result.stdout.rstrip().endswith("Self-test passed.")


def test_self_test_names_a_missing_model() -> None:
    result = run_self_test("--no-audio", "--model", "/nonexistent/model.gguf")
    assert result.returncode == 1
    assert "Self-test FAILED at step 'model load': no model file at /nonexistent/model.gguf" in result.stdout
    # Later steps are not run after a failure; the engine host is still shut down.
    assert "  ok    shutdown" in result.stdout
    assert "generate" not in result.stdout


def test_self_test_names_a_broken_model(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))
    result = run_self_test("--no-audio", "--model", str(broken))
    assert result.returncode == 1, result.stdout
    assert "Self-test FAILED at step 'model load'" in result.stdout
    assert "Traceback" not in result.stdout


def test_self_test_loads_a_real_model(model_270m: Path) -> None:
    # A real (base) Gemma 3 270M: no grammar, no template of its own; the step must still load it.
    result = run_self_test("--no-audio", "--model", str(model_270m), "--max-tokens", "8")
    print(result.stdout)
    load = next(line for line in result.stdout.splitlines() if "model load" in line)
    assert load.split()[0] == "ok", result.stdout
    assert "gemma3-270m" in load


def test_about_dialog_shows_version_licenses_and_folders(qtbot, private_folders: Path) -> None:
    from app import __version__
    from app.core import paths
    from app.ui.about_dialog import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    text = dialog.licenses_view.toPlainText()
    for needle in ("Qt 6", "GNU LGPL v3", "llama.cpp and ggml", "MIT", "Gemma 4 models", "Apache 2.0"):
        assert needle in text
    assert dialog.windowTitle() == "About Gemma Desktop"
    header = " ".join(label.text() for label in dialog.findChildren(type(dialog.versions_label)))
    assert f"Version {__version__}" in header
    assert "llama-cpp-python 0.3.36" in dialog.versions_label.text()
    assert str(paths.models_dir()) in dialog.folder_labels["Models"].text()
    assert str(paths.models_dir()).startswith(str(private_folders))
    image = dialog.grab().toImage()
    assert image.width() >= 400 and image.height() >= 400


def _run_with_probe(mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    # What benchmarks/startup.py does from source: the real window, with the probe installed.
    wrapper = (
        "import sys\nimport app.ui.app_window as aw, app.self_test as st\n"
        "_build = aw.build_main_window\n"
        "def build(*a, **k):\n    w = _build(*a, **k)\n    st.install_startup_probe(w)\n    return w\n"
        "aw.build_main_window = build\nfrom app.bootstrap import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "GEMMA_DESKTOP_STARTUP_PROBE": mode}
    return subprocess.run([sys.executable, "-c", wrapper, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _marks(stderr: str, name: str) -> list[float]:
    return [float(line.split()[1]) for line in stderr.splitlines() if line.startswith(name + " ")]


def test_startup_probe_reports_first_paint() -> None:
    result = _run_with_probe("quit")
    assert result.returncode == 0, result.stderr[-3000:]
    (seconds,) = _marks(result.stderr, "first-paint")
    assert 0.0 < seconds < 60.0


def test_startup_probe_reports_model_ready(model_270m: Path) -> None:
    result = _run_with_probe("quit-when-ready", "--model", str(model_270m))
    assert result.returncode == 0, result.stderr[-3000:]
    (painted,) = _marks(result.stderr, "first-paint")
    (ready,) = _marks(result.stderr, "model-ready")
    assert 0.0 < painted < ready < 60.0
