"""The GUI's engine client: talks to the engine host from a worker QThread, emits Qt signals."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from app.core import paths
from app.core.engine.host_process import HostProcess
from app.core.engine.protocol import ProtocolError
from app.core.engine.stream import StreamAssembler

log = logging.getLogger(__name__)

COALESCE_S = 0.03  # token text reaches the GUI in ~30 ms batches, not once per token


class _EventPump(QThread):
    """Reads host events, splits thinking/answer, and emits coalesced batches."""

    sig_event = Signal(dict)
    sig_deltas = Signal(list)
    sig_exited = Signal(int, str)

    def __init__(self, host: HostProcess) -> None:
        super().__init__()
        self.setObjectName("engine-event-pump")
        self._host = host
        self.assembler: StreamAssembler | None = None

    def run(self) -> None:
        try:
            self._pump()
        except Exception as exc:  # noqa: BLE001 - a broken stream is reported as a crash
            log.exception("engine event pump failed")
            self.sig_exited.emit(-1, str(exc))

    def _pump(self) -> None:
        # The first piece after a pause goes out at once (time to first token); later ones wait
        # for the next 30 ms mark, so the GUI gets ~33 batches a second, never one per token.
        last_flush = 0.0
        while True:
            pending = self.assembler is not None and self.assembler.has_pending()
            wait = max(0.0, last_flush + COALESCE_S - time.monotonic()) if pending else COALESCE_S
            try:
                events = self._host.read_events(wait)
            except (ProtocolError, OSError, ValueError) as exc:
                events = None
                log.error("engine stream broken: %s", exc)
            if events is None:
                self._flush()
                self._host.reap()
                self.sig_exited.emit(self._host.returncode() or 0, self._host.stderr_tail())
                return
            for ev in events:
                kind = ev.get("ev")
                if kind == "piece":
                    if self.assembler is not None:
                        self.assembler.feed(ev.get("text", ""))
                    continue
                if kind in ("done", "error"):
                    if self.assembler is not None:
                        self.assembler.finish()
                    if self._flush():
                        last_flush = time.monotonic()
                self.sig_event.emit(ev)
            now = time.monotonic()
            if now - last_flush >= COALESCE_S and self._flush():
                last_flush = now

    def _flush(self) -> bool:
        """Emit what arrived since the last batch; False when there was nothing."""
        if self.assembler is not None:
            batch = self.assembler.take()
            if batch:
                self.sig_deltas.emit(batch)
                return True
        return False


class EngineClient(QObject):
    """Start/stop the engine host, load models, generate; everything arrives as signals."""

    sig_host_started = Signal()
    sig_load_progress = Signal(float)
    sig_loaded = Signal(dict)
    sig_load_failed = Signal(str)
    sig_delta = Signal(str, str)  # kind ("thinking" | "answer"), text
    sig_finished = Signal(dict)  # stats (+ "thinking", "answer": the full texts)
    sig_failed = Signal(str)
    sig_engine_crashed = Signal(str)

    @property
    def last_load(self) -> dict[str, Any] | None:
        """The arguments of the last load_model call (what restart() reloads)."""
        return dict(self._last_load) if self._last_load else None

    def __init__(self, parent: QObject | None = None, *, command: list[str] | None = None) -> None:
        super().__init__(parent)
        self._command = command
        self._host: HostProcess | None = None
        self._pump: _EventPump | None = None
        self._next_id = 0
        self._active_id: int | None = None
        self._last_load: dict[str, Any] | None = None
        self.model_info: dict[str, Any] | None = None
        self._loading = False

    # ----- state ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A generation is running."""
        return self._active_id is not None

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def host_pid(self) -> int | None:
        return self._host.pid if self._host and self._host.alive() else None

    # ----- host lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the host process (done lazily by load_model)."""
        if self._host is not None and self._host.alive():
            return
        self._stop_pump()
        self._host = HostProcess(self._command, log_path=paths.log_dir() / "engine.log")
        self._host.start()
        self._pump = _EventPump(self._host)
        self._pump.sig_event.connect(self._on_pump_event)
        self._pump.sig_deltas.connect(self._on_pump_deltas)
        self._pump.sig_exited.connect(self._on_pump_exited)
        self._pump.start()

    def shutdown(self) -> None:
        """Stop generation, end the host, join the reader; safe to call twice."""
        if self._host is not None:
            self._host.stop()
        self._stop_pump()
        self._host = None
        self._active_id = None
        self._loading = False
        self.model_info = None

    def _stop_pump(self) -> None:
        if self._pump is not None:
            if self._host is not None and self._host.alive():
                self._host.stop()
            self._pump.wait(10_000)
            self._pump.sig_event.disconnect(self._on_pump_event)
            self._pump.sig_deltas.disconnect(self._on_pump_deltas)
            self._pump.sig_exited.disconnect(self._on_pump_exited)
            self._pump.deleteLater()
            self._pump = None

    def restart(self) -> None:
        """After a crash: a fresh host with the last model."""
        self.shutdown()
        if self._last_load is not None:
            self.load_model(**self._last_load)
        else:
            self.start()

    # ----- requests ------------------------------------------------------------------------

    def load_model(
        self,
        path: str,
        mmproj: str | None = None,
        n_ctx: int = 8192,
        n_gpu_layers: int | None = None,
        n_threads: int | None = None,
        chat_template: str | None = None,
    ) -> None:
        """Load a model in a fresh host (switching models ends the old host: all memory returns).

        n_gpu_layers None is "auto": the host offloads as many layers as fit in free memory.
        """
        self._last_load = {
            "path": path, "mmproj": mmproj, "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers,
            "n_threads": n_threads, "chat_template": chat_template,
        }
        if self.model_info is not None or self.busy:
            self.shutdown()
        self.start()
        self._loading = True
        assert self._host is not None
        self._host.send({"op": "load", **self._last_load})

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool, params: dict[str, Any]) -> int:
        """Start a generation; returns its id. Deltas, then sig_finished or sig_failed, follow."""
        if self._host is None or not self._host.alive():
            raise RuntimeError("the engine is not running")
        self._next_id += 1
        self._active_id = self._next_id
        assert self._pump is not None
        self._pump.assembler = StreamAssembler()
        self._host.send(
            {"op": "generate", "id": self._active_id, "messages": messages,
             "enable_thinking": enable_thinking, "params": params}
        )
        return self._active_id

    def generate_raw(self, prompt: str, params: dict[str, Any]) -> int:
        """Complete a raw prompt (no template); used by benchmarks and base models."""
        if self._host is None:
            raise RuntimeError("the engine is not running")
        self._next_id += 1
        self._active_id = self._next_id
        assert self._pump is not None
        self._pump.assembler = StreamAssembler()
        self._host.send({"op": "generate", "id": self._active_id, "prompt": prompt, "params": params})
        return self._active_id

    def stop(self) -> None:
        """Stop the running generation now: written straight to the pipe, not queued behind it."""
        if self._host is not None and self._host.alive() and self.busy:
            with contextlib.suppress(OSError):
                self._host.send({"op": "stop"})

    def kill_host_for_test(self) -> None:
        """SIGKILL the host (to exercise the crash path)."""
        if self._host is not None:
            self._host.kill()

    # ----- events --------------------------------------------------------------------------

    def _stale(self) -> bool:
        """An event queued by a host that has since been replaced (a switch or a restart)."""
        return self._pump is None or self.sender() is not self._pump

    def _on_pump_deltas(self, batch: list) -> None:
        if self._stale():
            return
        for kind, text in batch:
            self.sig_delta.emit(kind, text)

    def _on_pump_event(self, ev: dict) -> None:
        if self._stale():
            return
        kind = ev.get("ev")
        if kind == "ready":
            self.sig_host_started.emit()
        elif kind == "progress":
            self.sig_load_progress.emit(float(ev.get("fraction", 0.0)))
        elif kind == "loaded":
            self._loading = False
            self.model_info = ev["info"]
            self.sig_loaded.emit(ev["info"])
        elif kind == "done":
            stats = dict(ev.get("stats") or {})
            if self._pump is not None and self._pump.assembler is not None:
                stats["thinking"] = self._pump.assembler.thinking
                stats["answer"] = self._pump.assembler.answer
            self._active_id = None
            self.sig_finished.emit(stats)
        elif kind == "error":
            message = ev.get("message", "unknown error")
            if ev.get("op") == "load":
                self._loading = False
                self.sig_load_failed.emit(message)
            else:
                self._active_id = None
                self.sig_failed.emit(message)

    def _on_pump_exited(self, code: int, stderr_tail: str) -> None:
        if self._stale():
            return
        expected = self._host is None or self._host.expected_exit
        was_busy = self.busy or self._loading
        self._active_id = None
        self._loading = False
        self.model_info = None
        if expected:
            return
        log.error("engine host exited with %s:\n%s", code, stderr_tail)
        if code < 0:
            import signal as _signal

            try:
                how = f"was killed by {_signal.Signals(-code).name}"
            except ValueError:
                how = f"ended with signal {-code}"
        else:
            how = f"exited with code {code}"
        activity = " while it was working" if was_busy else ""
        self.sig_engine_crashed.emit(
            f"The engine {how}{activity}. Your conversation is saved.\n\n{stderr_tail}".rstrip()
        )
