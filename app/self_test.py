"""`GemmaDesktop --self-test [--model PATH]`: check that this installation really works, step by step.

Runs offscreen (no window), frozen or from source: paints the About box, starts the engine host
(the same executable with --engine-host), loads a model, generates a few tokens with thinking on,
records one second from the microphone if there is one, and prints a short report. Exit 0 when
every step passed; 1 and the name of the failing step otherwise. Just over 400 lines: one step
per part the app needs, each failing in plain words.

With no --model it uses a tiny synthetic Gemma 4 (random weights, the real architecture and chat
template): shipped inside the bundle, built by packaging/selftest_model.py when run from source.
A grammar pins its reply to "thinking, then answer", so the thinking/answer split is checked too.

Also here: the startup probe used by benchmarks/startup.py (GEMMA_DESKTOP_STARTUP_PROBE).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import APP_NAME, __version__

SELFTEST_MODEL_FILE = "selftest-gemma4.gguf"
# Forces Gemma 4's reply shape on the random-weight model: a thought, then an answer.
THINKING_GRAMMAR = (
    'root ::= "<|channel>thought\\n" word " " word "<channel|>" word " " word\n'
    "word ::= [a-z] [a-z] [a-z] [a-z]?\n"
)
PROBE_VAR = "GEMMA_DESKTOP_STARTUP_PROBE"


class StepFailed(Exception):
    """A step of the self-test did not pass; the message says what the user can do."""


@dataclass
class StepResult:
    name: str
    status: str  # "ok" | "skip" | "FAIL"
    seconds: float
    detail: str


# ----- the model ---------------------------------------------------------------------------------

def _source_root() -> Path:
    return Path(__file__).resolve().parents[1]


def default_model() -> Path:
    """The tiny synthetic Gemma 4: from the bundle, or built once into the cache from source."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        path = Path(bundle) / "selftest" / SELFTEST_MODEL_FILE
        if path.is_file():
            return path
        raise StepFailed("this build carries no self-test model; run the self-test with --model PATH")
    root = _source_root()
    generator = root / "packaging" / "selftest_model.py"
    inputs = [generator, root / "tests" / "fixtures" / "gemma4.py",
              root / "tests" / "fixtures" / "gemma4_template.py"]
    if not all(p.is_file() for p in inputs):
        raise StepFailed("no self-test model in this installation; run the self-test with --model PATH")
    from app.core import paths

    key = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()[:16]
    target = paths.cache_dir() / "selftest" / key / SELFTEST_MODEL_FILE
    if not target.is_file():
        spec = importlib.util.spec_from_file_location("gemma_selftest_model", generator)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build(target.parent)
    return target


# ----- waiting on Qt signals ---------------------------------------------------------------------

def _wait(ok: Any, fails: list[Any], timeout_s: float, what: str) -> tuple[Any, ...]:
    """Run the event loop until `ok` fires (its arguments) or a failure signal / the timeout."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    outcome: dict[str, Any] = {}

    def on_ok(*args: Any) -> None:
        outcome.setdefault("ok", args)
        loop.quit()

    def on_fail(*args: Any) -> None:
        outcome.setdefault("fail", " ".join(str(a) for a in args) or "failed")
        loop.quit()

    ok.connect(on_ok)
    for sig in fails:
        sig.connect(on_fail)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    try:
        loop.exec()
    finally:
        timer.stop()
        ok.disconnect(on_ok)
        for sig in fails:
            sig.disconnect(on_fail)
    if "fail" in outcome:
        raise StepFailed(str(outcome["fail"]).strip())
    if "ok" not in outcome:
        raise StepFailed(f"{what} did not finish within {timeout_s:.0f} s")
    return tuple(outcome["ok"])


# ----- the steps ---------------------------------------------------------------------------------

class SelfTest:
    """The steps in order; each returns a one-line detail or raises StepFailed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client: Any = None
        self.model: Path | None = None
        self.synthetic = False

    def step_environment(self) -> str:
        from app.core import paths

        frozen = "frozen" if getattr(sys, "frozen", False) else "from source"
        return (f"{frozen}, {platform.system()} {platform.machine()}, Python "
                f"{sys.version.split()[0]}; data in {paths.data_dir()}")

    def step_llama_cpp(self) -> str:
        from app.core.hardware.devices import ggml_devices, llama_cpp_lib_dir, supports_gpu_offload

        folder = llama_cpp_lib_dir()
        if folder is None:
            raise StepFailed("llama.cpp's libraries are missing from this installation; reinstall the app")
        devices = ggml_devices(folder)
        names = ", ".join(f"{d.kind}:{d.description or d.name}" for d in devices) or "none"
        from app.core.engine.backends import report

        loaded = report()
        gpu_modules = loaded is not None and any(not m.name.startswith("cpu") for m in loaded.modules)
        gpu = ("yes" if supports_gpu_offload(folder)
               else "no (no usable GPU)" if gpu_modules else "no (CPU build)")
        modules = ""
        if loaded is not None and loaded.dynamic:
            # Why a GPU module is unused, in words ("vulkan: no Vulkan driver"): the user's answer
            # to "why is it running on the CPU?".
            why = [f"{m.name}: {m.reason}" for m in loaded.modules
                   if not m.name.startswith("cpu") and m.reason]
            modules = f"; CPU variant {loaded.cpu_variant}" + "".join(f"; {w}" for w in why)
        return f"{len(devices)} device(s): {names}; GPU offload: {gpu}{modules}"

    def step_widgets(self) -> str:
        from app.ui.about_dialog import AboutDialog

        dialog = AboutDialog()
        try:
            image = dialog.grab().toImage()
        finally:
            dialog.deleteLater()
        w, h = image.width(), image.height()
        background = image.pixelColor(1, 1)
        varied = sum(1 for y in range(0, h, 4) for x in range(0, w, 4)
                     if image.pixelColor(x, y) != background)
        if w < 100 or h < 100 or varied < 50:
            raise StepFailed(f"the About box painted blank ({w}x{h}, {varied} varied pixels)")
        return f"About box painted {w}x{h} offscreen ({varied} non-background samples)"

    def step_engine_host(self) -> str:
        from app.services.engine_client import EngineClient

        self.client = EngineClient()
        self.client.start()
        _wait(self.client.sig_host_started, [self.client.sig_engine_crashed], self.args.timeout,
              "starting the engine host")
        return f"pid {self.client.host_pid}"

    def step_model_load(self) -> str:
        if self.args.model:
            self.model = Path(self.args.model)
            if not self.model.is_file():
                raise StepFailed(f"no model file at {self.model}; check the path")
        else:
            self.model = default_model()
            self.synthetic = True
        self.client.load_model(str(self.model), mmproj=self.args.mmproj, n_ctx=self.args.n_ctx,
                               n_gpu_layers=self.args.gpu_layers)
        (info,) = _wait(self.client.sig_loaded,
                        [self.client.sig_load_failed, self.client.sig_engine_crashed],
                        self.args.timeout, "loading the model")
        size_mb = self.model.stat().st_size / 1e6
        arch = info.get("architecture") or info.get("arch") or "?"
        return f"{self.model.name} ({size_mb:.1f} MB, {arch}), n_ctx {self.args.n_ctx}"

    def step_generate(self) -> str:
        from app.core.engine.records import SamplingParams

        params: dict[str, Any] = {**SamplingParams().recommended(), "temperature": 0.7,
                                  "max_tokens": self.args.max_tokens, "seed": 7}
        if self.synthetic:
            params["grammar"] = THINKING_GRAMMAR
        messages = [{"role": "user", "content": "Say hello in two words."}]
        self.client.generate(messages, True, params)
        (reply,) = _wait(self.client.sig_finished,
                         [self.client.sig_failed, self.client.sig_engine_crashed],
                         self.args.timeout, "generating")
        stats = reply.stats
        n = stats.completion_tokens
        thinking, answer = reply.thinking, reply.answer
        if n < 1:
            raise StepFailed("the model generated no tokens")
        if self.synthetic and (not thinking.strip() or not answer.strip()):
            raise StepFailed(f"thinking/answer split failed: thinking={thinking!r} answer={answer!r}")
        if "<|channel>" in answer or "<channel|>" in answer:
            raise StepFailed(f"a thought marker leaked into the answer: {answer!r}")
        speed = stats.decode_tok_s
        offload = stats.offload or {}
        where = (f"{offload['layers']}/{offload['of']} layers on {offload['device']}"
                 if offload.get("layers") else "CPU")
        return (f"{n} tokens at {speed:.0f} tok/s on {where} (CPU variant {stats.cpu_variant}); "
                f"thinking {thinking.strip()[:40]!r}, answer {answer.strip()[:40]!r}")

    def step_microphone(self) -> str:
        if self.args.no_audio:
            return "skip: --no-audio"
        from PySide6.QtCore import QTimer
        from PySide6.QtMultimedia import QMediaDevices

        from app.core.media.audio import NO_SOUND_MESSAGE
        from app.services.recorder import MicrophoneRecorder

        if not QMediaDevices.audioInputs():
            return "skip: no microphone found"
        recorder = MicrophoneRecorder()
        captured = [0.0]
        early: list[str] = []  # start() reports a missing/busy device synchronously
        recorder.sig_elapsed.connect(lambda s: captured.__setitem__(0, max(captured[0], s)))
        recorder.sig_failed.connect(early.append)
        try:
            recorder.start(None)
            if early:
                raise StepFailed(early[0])
            QTimer.singleShot(1000, recorder.stop)
            try:
                path, duration = _wait(recorder.sig_finished, [recorder.sig_failed], 10.0,
                                       "recording")
            except StepFailed as exc:
                # A working microphone in a quiet room records silence; the app refuses to send
                # that clip, but the device did deliver a second of audio, which is what we check.
                if str(exc) == NO_SOUND_MESSAGE and captured[0] >= 0.8:
                    return f"recorded {captured[0]:.2f} s of silence from the default microphone"
                raise
        finally:
            recorder.cancel()
            recorder.deleteLater()
        # The clip proved the microphone works; it belongs to no conversation, so it goes.
        Path(path).unlink(missing_ok=True)
        return f"recorded {duration:.2f} s into {Path(path).name} (deleted)"

    def step_shutdown(self) -> str:
        if self.client is None:
            return "nothing to stop"
        pid = self.client.host_pid
        self.client.shutdown()
        if not self.client.wait_closed():
            raise StepFailed(f"engine host {pid} did not end")
        return f"engine host {pid} ended"


STEPS: tuple[tuple[str, str], ...] = (
    ("environment", "step_environment"),
    ("llama.cpp", "step_llama_cpp"),
    ("widgets", "step_widgets"),
    ("engine host", "step_engine_host"),
    ("model load", "step_model_load"),
    ("generate", "step_generate"),
    ("microphone", "step_microphone"),
)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="GemmaDesktop --self-test",
                                description="Check that this installation works, step by step.")
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--model", help="a GGUF model to load (default: the built-in tiny test model)")
    p.add_argument("--mmproj", help="its projector file")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--gpu-layers", type=int, default=-1)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--no-audio", action="store_true", help="skip the microphone step")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per step")
    return p.parse_args(argv)


def run_self_test(argv: list[str], out: Callable[[str], None] | None = None) -> int:
    """Run every step and print the report; 0 when all passed, 1 naming the failing step."""
    args = _parse(argv)
    say = out or (lambda line: print(line, flush=True))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a self-test never needs (or opens) a window
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_NAME)
    test = SelfTest(args)
    results: list[StepResult] = []
    say(f"{APP_NAME} {__version__} self-test")
    failed: StepResult | None = None
    for name, method in (*STEPS, ("shutdown", "step_shutdown")):
        if failed is not None and name != "shutdown":
            continue
        t0 = time.perf_counter()
        try:
            detail = getattr(test, method)()
            status = "skip" if detail.startswith("skip:") else "ok"
            detail = detail.removeprefix("skip:").strip()
        except StepFailed as exc:
            status, detail = "FAIL", str(exc)
        except Exception as exc:  # noqa: BLE001 - the report must name the step, whatever broke
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
        result = StepResult(name, status, time.perf_counter() - t0, detail)
        results.append(result)
        say(f"  {result.status:<4}  {result.name:<12} {result.seconds:6.2f} s  {result.detail}")
        if status == "FAIL" and failed is None:
            failed = result
    app.processEvents()
    if failed is not None:
        say(f"Self-test FAILED at step '{failed.name}': {failed.detail}")
        return 1
    say("Self-test passed.")
    return 0


# ----- startup probe (benchmarks/startup.py) -----------------------------------------------------

def process_uptime() -> float:
    """Seconds since this process started (Linux: from /proc; elsewhere: since this import)."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


_IMPORTED_AT = time.monotonic()


def install_startup_probe(window: Any) -> None:
    """With GEMMA_DESKTOP_STARTUP_PROBE set: print `first-paint <s>` and `model-ready <s>` to stderr.

    `=quit` also quits after the first paint, `=quit-when-ready` once the model is loaded.
    bootstrap.run_gui calls this after window.show().
    """
    mode = os.environ.get(PROBE_VAR)
    if not mode or getattr(window, "_startup_probe_installed", False):
        return  # off, or installed already (bootstrap and the benchmark's wrapper both may)
    window._startup_probe_installed = True
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    app = QApplication.instance()
    assert app is not None

    class _FirstPaint(QObject):
        done = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
            if (not self.done and event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                    and obj.window() is window):
                self.done = True
                # Reported once this paint pass has finished and reached the screen.
                QTimer.singleShot(0, self._report)
            return False

        def _report(self) -> None:
            app.removeEventFilter(self)
            print(f"first-paint {process_uptime():.3f}", file=sys.stderr, flush=True)
            if mode == "quit":
                app.quit()

    probe = _FirstPaint(app)
    app.installEventFilter(probe)
    client = getattr(window, "client", None) or getattr(window, "_client", None)
    if client is not None and hasattr(client, "sig_loaded"):

        def on_loaded(_info: object) -> None:
            print(f"model-ready {process_uptime():.3f}", file=sys.stderr, flush=True)
            if mode == "quit-when-ready":
                app.quit()

        client.sig_loaded.connect(on_loaded)
