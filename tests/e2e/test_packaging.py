"""The double-clickable app: build the PyInstaller bundle, run its self-test, install it, and open
its real window from the installed desktop entry under Xvfb (xcb), checked on a screenshot.

Building takes 1.5-2.5 minutes on 2 cores. Set GEMMA_BUNDLE_DIR to a bundle built earlier (by a
separate CI step running packaging/build.sh) to test that one instead of building here.
"""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.pulse import RATE, PulseServer, pulse  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

# Grabs the X server's root window from a separate process (what a screenshot tool does).
_GRAB = """
import sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
pixmap = app.primaryScreen().grabWindow(0)
sys.exit(0 if pixmap.save(sys.argv[1]) else 1)
"""


@pytest.fixture(scope="module")
def bundle() -> Path:
    """dist/GemmaDesktop, built now (or GEMMA_BUNDLE_DIR when a CI step built it already)."""
    given = os.environ.get("GEMMA_BUNDLE_DIR")
    if given:
        return Path(given)
    t0 = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh")], cwd=ROOT, capture_output=True, text=True,
        timeout=1200, env={**os.environ, "GEMMA_BUILD_NO_SMOKE": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    print(f"bundle built in {time.monotonic() - t0:.0f} s: {result.stdout.strip().splitlines()[-1]}")
    return ROOT / "dist" / "GemmaDesktop"


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_bundle_is_lean(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert (bundle / "GemmaDesktop").is_file() and os.access(bundle / "GemmaDesktop", os.X_OK)
    qt = internal / "PySide6" / "Qt"
    names = {p.name for p in internal.rglob("*")}
    # What the app needs ...
    for needed in ("libllama.so", "libggml.so", "libmtmd.so", "libqxcb.so", "libqoffscreen.so",
                   "libQt6Multimedia.so.6", "libqsvgicon.so", "libqsvg.so", "selftest-gemma4.gguf",
                   "app.svg", "style.qss", "catalog.json", "gemma-desktop-256.png"):
        assert needed in names, needed
    # ... and none of what it does not.
    for unwanted in ("libQt6WebEngineCore.so.6", "libQt6Quick.so.6", "libQt6Qml.so.6",
                     "libQt6Pdf.so.6", "libQt6Charts.so.6", "libQt63DCore.so.6",
                     "libffmpegmediaplugin.so", "libavcodec.so.61", "libqgtk3.so"):
        assert unwanted not in names, unwanted
    assert not (qt / "qml").exists() and not (qt / "translations").exists()
    size = _du(bundle)
    print(f"bundle size {size / 1e6:.0f} MB (Qt {_du(qt) / 1e6:.0f} MB, "
          f"llama.cpp {_du(internal / 'llama_cpp') / 1e6:.0f} MB)")
    # 263 MB before the GPU backends; the 14 CPU variants and the Vulkan module (48 MB), and the
    # API server's and MCP's libraries, brought it to about 385 MB.
    assert size < 400e6


def test_bundle_self_test(bundle: Path, pulse: PulseServer, tmp_path: Path) -> None:  # noqa: F811
    assert pulse.feeder is not None
    t = np.arange(int(120 * RATE)) / RATE
    pulse.feeder.play_samples(0.3 * np.sin(2 * np.pi * 440.0 * t))  # a tone for the mic step
    try:
        result = subprocess.run(
            [str(bundle / "GemmaDesktop"), "--self-test"], capture_output=True, text=True,
            timeout=300, cwd=tmp_path,
            # No Python of ours on the way: the bundle must not lean on the venv or the sources.
            env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
        )
    finally:
        pulse.feeder.clear()
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "  ok    environment" in result.stdout and "frozen" in result.stdout
    for step in ("llama.cpp", "widgets", "engine host", "model load", "generate", "microphone"):
        assert f"  ok    {step}" in result.stdout, step
    assert "recorded" in result.stdout and ".wav" in result.stdout
    assert result.stdout.rstrip().endswith("Self-test passed.")


@pytest.mark.parametrize("driver", ["hidden", "lavapipe"])
def test_bundle_self_test_reports_its_backend(bundle: Path, pulse: PulseServer,  # noqa: F811
                                             tmp_path: Path, driver: str) -> None:
    """The bundle carries the Vulkan module: with lavapipe visible the self-test generates on
    Vulkan0; with no Vulkan driver (the ICD hidden) it runs on the CPU and says why."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["GGML_VK_VISIBLE_DEVICES"] = "0"
    if driver == "hidden":
        env["VK_ICD_FILENAMES"] = "/nonexistent"
    result = subprocess.run([str(bundle / "GemmaDesktop"), "--self-test", "--no-audio"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    llama = next(line for line in result.stdout.splitlines() if "  ok    llama.cpp" in line)
    generate = next(line for line in result.stdout.splitlines() if "  ok    generate" in line)
    if driver == "hidden":
        assert "vulkan: no Vulkan driver" in llama and "GPU offload: no" in llama, llama
        assert " on CPU " in generate, generate
    else:
        assert "gpu:llvmpipe" in llama, llama
        assert "layers on Vulkan0" in generate, generate


def test_install_registers_desktop_entry_and_icons(bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "share"), "PREFIX_BIN": str(tmp_path / "bin")}
    subprocess.run(["bash", str(ROOT / "packaging" / "install.sh"), str(bundle)], check=True,
                   env=env, capture_output=True, timeout=300)
    share = tmp_path / "share"
    # The freedesktop.org validator (Debian: desktop-file-utils) on the entry as installed.
    check = subprocess.run(["desktop-file-validate", str(share / "applications" / "gemma-desktop.desktop")],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "error" not in check.stdout, check.stdout
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    entry.read(share / "applications" / "gemma-desktop.desktop")
    desktop = entry["Desktop Entry"]
    assert desktop["Name"] == "Gemma Desktop" and desktop["Type"] == "Application"
    assert desktop["Icon"] == "gemma-desktop" and desktop["Terminal"] == "false"
    exe = Path(shlex.split(desktop["Exec"])[0])
    assert exe == share / "gemma-desktop" / "app" / "GemmaDesktop" and os.access(exe, os.X_OK)
    for size in (16, 32, 48, 128, 256, 512):
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "gemma-desktop.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "gemma-desktop.svg").is_file()
    assert (tmp_path / "bin" / "gemma-desktop").resolve() == exe
    subprocess.run(["bash", str(ROOT / "packaging" / "install.sh"), "--uninstall"], check=True,
                   env=env, capture_output=True, timeout=60)
    assert not (share / "applications" / "gemma-desktop.desktop").exists()
    assert not exe.exists()


@pytest.fixture
def xvfb() -> Iterator[str]:
    """A private X server on a free display (Xvfb picks it and tells us through -displayfd)."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            display = pipe.readline().strip()
        assert display, "Xvfb did not start"
        yield f":{display}"
    finally:
        proc.terminate()
        proc.wait(10)


def _screenshot(display: str, path: Path) -> np.ndarray:
    from PIL import Image

    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    subprocess.run([sys.executable, "-c", _GRAB, str(path)], env=env, check=True, timeout=60,
                   capture_output=True)
    return np.asarray(Image.open(path).convert("RGB"))


def test_bundled_window_opens_under_xvfb(bundle: Path, xvfb: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", XDG_DATA_HOME=str(tmp_path / "share"),
               PREFIX_BIN=str(tmp_path / "bin"))
    subprocess.run(["bash", str(ROOT / "packaging" / "install.sh"), str(bundle)], check=True,
                   env=env, capture_output=True, timeout=300)
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(tmp_path / "share" / "applications" / "gemma-desktop.desktop")
    command = shlex.split(entry["Desktop Entry"]["Exec"])  # what the menu runs on a double-click
    t0 = time.monotonic()
    app = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    shot = tmp_path / "screen.png"
    try:
        box = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and app.poll() is None:
            pixels = _screenshot(xvfb, shot)
            lit = np.argwhere(pixels.max(axis=2) > 0)  # Xvfb's root is black; no window manager
            if len(lit):
                (y0, x0), (y1, x1) = lit.min(axis=0), lit.max(axis=0)
                box = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
                if box[2] >= 720 and box[3] >= 480:
                    break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        assert app.poll() is None, app.communicate(timeout=5)[0].decode(errors="replace")[-3000:]
        assert box is not None and box[2] >= 720 and box[3] >= 480, f"no window on screen: {box}"
        x, y, w, h = box
        window = pixels[y : y + h, x : x + w]
        colours = len(np.unique(window.reshape(-1, 3), axis=0))
        print(f"window {w}x{h} at {x},{y} after {elapsed:.1f} s, {colours} colours; "
              f"screenshot {shot}")
        assert colours > 20, "the window is a flat fill, not a painted UI"
        # The sidebar, chat pane and composer differ in brightness: not one blank rectangle.
        assert window.std() > 5
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)
            app.wait()
        if app.stdout is not None:
            app.stdout.close()
