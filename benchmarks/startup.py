"""Startup: cold start to the first painted window, launch to "model ready", idle memory.

    .venv/bin/python benchmarks/startup.py [--runs 3] [--bundle dist/GemmaDesktop] [--model PATH]

Each run starts a fresh process under a private Xvfb (the real xcb platform, as on a desktop).
"First painted" is measured from outside, the way a user sees it: a watcher process grabs the X
screen every ~30 ms and notes when a window of at least the minimum size (720x480) shows painted
pixels. Reference, measured the same way in the same run: a bare PySide6 QWidget window, the
floor any Qt app pays. Targets: first paint under 2 s; idle RSS without a model under 250 MB.

"Model ready" (the real Gemma 3 270M loaded, time from launch) needs the app's startup probe:
GEMMA_DESKTOP_STARTUP_PROBE makes the window print `model-ready <s>` (app/self_test.py
install_startup_probe). From source the probe is installed by a two-line wrapper; the bundle
reports it once app.bootstrap.run_gui calls install_startup_probe (otherwise "n/a").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MIN_W, MIN_H = 720, 480

# The watcher: waits for "go" on stdin, then polls the screen and prints when a window appeared.
_WATCH = r"""
import sys, time
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
screen = app.primaryScreen()
min_w, min_h, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    img = screen.grabWindow(0).toImage()
    w, h = img.width(), img.height()
    # Xvfb's root is black and there is no window manager: lit pixels are the app's window.
    xs = [x for x in range(0, w, 16) if any(img.pixel(x, y) & 0xFFFFFF for y in range(0, h, 64))]
    ys = [y for y in range(0, h, 16) if any(img.pixel(x, y) & 0xFFFFFF for x in range(0, w, 64))]
    if xs and ys and xs[-1] - xs[0] + 16 >= min_w and ys[-1] - ys[0] + 16 >= min_h:
        print(f"painted {time.monotonic():.4f}", flush=True)
        break
    time.sleep(0.03)
else:
    print("timeout", flush=True)
"""

_BARE_QT = (
    "import sys\nfrom PySide6.QtWidgets import QApplication, QLabel\n"
    "app = QApplication(sys.argv)\nw = QLabel('bare Qt window')\nw.resize(1200, 800)\nw.show()\n"
    "sys.exit(app.exec())\n"
)
# From source, the probe is installed around build_main_window (what bootstrap will do itself).
_SOURCE_WITH_PROBE = (
    "import sys\nsys.path.insert(0, {root!r})\nimport app.ui.app_window as aw, app.self_test as st\n"
    "_build = aw.build_main_window\n"
    "def build(*a, **k):\n    w = _build(*a, **k)\n    st.install_startup_probe(w)\n    return w\n"
    "aw.build_main_window = build\nfrom app.bootstrap import main\nsys.exit(main(sys.argv[1:]))\n"
)


class Xvfb:
    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            self.display = ":" + pipe.readline().strip()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def launch(command: list[str], env: dict[str, str], want_model: bool, limit: float = 120.0,
           measure_rss: bool = False) -> dict[str, float]:
    """One cold start: seconds to first paint (outside view), model-ready (probe), idle RSS."""
    watcher = subprocess.Popen([PY, "-c", _WATCH, str(MIN_W), str(MIN_H), str(limit)], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert watcher.stdout is not None and watcher.stdin is not None
    assert watcher.stdout.readline().strip() == "ready"
    result: dict[str, float] = {}
    t0 = time.monotonic()
    app = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    watcher.stdin.write("go\n")
    watcher.stdin.flush()
    ready = threading.Event()

    def read_probe() -> None:
        assert app.stderr is not None
        for line in app.stderr:
            if line.startswith("model-ready"):
                result["model_ready"] = time.monotonic() - t0
                ready.set()
            elif line.startswith("first-paint"):
                result["probe_first_paint"] = float(line.split()[1])

    reader = threading.Thread(target=read_probe, daemon=True)
    reader.start()
    try:
        line = watcher.stdout.readline().split()
        if line and line[0] == "painted":
            result["first_paint"] = float(line[1]) - t0
        if measure_rss and "first_paint" in result:
            time.sleep(3.0)  # let deferred start-up work (hardware probe, history) settle
            result["rss_mb"] = _rss_mb(app.pid)
        if want_model:
            ready.wait(limit)
    finally:
        watcher.wait(10)
        if app.poll() is None:
            os.killpg(app.pid, 15)
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, 9)
            app.wait()
        reader.join(5)
    return result


def _fmt(values: list[float], unit: str) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values):.2f} {unit} (min {min(values):.2f}, n={len(values)})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bundle", type=Path, default=ROOT / "dist" / "GemmaDesktop")
    p.add_argument("--model", type=Path, default=None, help="GGUF for 'model ready' (default: 270M)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.model is None:
        from tests.fixtures.models import gemma3_270m_path

        args.model = gemma3_270m_path()

    xvfb = Xvfb()
    home = Path(tempfile.mkdtemp(prefix="gemma-startup-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    base.update(DISPLAY=xvfb.display, QT_QPA_PLATFORM="xcb", GEMMA_DESKTOP_HOME=str(home),
                GEMMA_DESKTOP_STARTUP_PROBE="1")
    frozen_env = {k: v for k, v in base.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    exe = args.bundle / "GemmaDesktop"
    variants = [("bare Qt window (reference)", [PY, "-c", _BARE_QT], base),
                ("python main.py", [PY, str(ROOT / "main.py")], base)]
    if exe.is_file():
        variants.append(("bundle GemmaDesktop", [str(exe)], frozen_env))
    else:
        print(f"(no bundle at {exe}: run packaging/build.sh to include it)")
    source_probe = [PY, "-c", _SOURCE_WITH_PROBE.format(root=str(ROOT))]
    ready_variants = [("python main.py", source_probe, base)]
    if exe.is_file():
        ready_variants.append(("bundle GemmaDesktop", [str(exe)], frozen_env))

    rows: list[tuple[str, str, str]] = []
    try:
        for name, command, env in variants:
            launch(command, env, want_model=False)  # warm-up: first-start work, file cache
            paints, rss = [], []
            for _ in range(args.runs):
                r = launch(command, env, want_model=False, measure_rss=True)
                if "first_paint" in r:
                    paints.append(r["first_paint"])
                if "rss_mb" in r:
                    rss.append(r["rss_mb"])
            rows.append((name, "first painted window", _fmt(paints, "s")))
            rows.append((name, "idle RSS, no model", _fmt(rss, "MB")))
        for name, command, env in ready_variants:
            ready = []
            for _ in range(args.runs):
                r = launch([*command, "--model", str(args.model)], env, want_model=True)
                if "model_ready" in r:
                    ready.append(r["model_ready"])
            rows.append((name, f"launch to model ready ({args.model.name})", _fmt(ready, "s")))
    finally:
        xvfb.close()

    width = max(len(r[0]) for r in rows)
    what = max(len(r[1]) for r in rows)
    print(f"\n{'variant':<{width}}  {'measure':<{what}}  result")
    for name, measure, value in rows:
        print(f"{name:<{width}}  {measure:<{what}}  {value}")
    print("\ntargets: first painted window < 2 s; idle RSS < 250 MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
