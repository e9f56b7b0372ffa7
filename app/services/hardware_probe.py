"""The hardware probe for the GUI: `probe_in_subprocess` on a worker thread, its report cached.

The probe runs in a child process because asking a CUDA device for its free memory creates a
context that would hold VRAM for the life of the GUI. Starting that child and waiting for it
takes a fraction of a second to a few seconds, which is why it never runs on the GUI thread.
The report is cached for the process (free memory changes little between two dialogs) and a
`refresh()` forces a new one, for example after a model was unloaded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core.hardware.devices import HardwareReport, probe_in_subprocess
from app.core.hardware.planner import Machine, machine_from_report
from app.core.hardware.speed import MachineSpeed, machine_speed

log = logging.getLogger(__name__)

ProbeFn = Callable[[], HardwareReport]


class _ProbeSignals(QObject):
    """Emitted from the worker thread; the connections to the probe are therefore queued."""

    sig_done = Signal(int, object)
    sig_error = Signal(int, str)


class HardwareProbe(QObject):
    """Probe the machine once in the background; `report` / `machine()` once it has answered.

    Signals: sig_progress(text) when a probe starts, sig_finished(HardwareReport),
    sig_failed(message for the user). A report set with `set_report` (tests, a hypothetical
    machine) counts as a finished probe.
    """

    sig_progress = Signal(str)
    sig_finished = Signal(object)
    sig_failed = Signal(str)

    def __init__(self, probe: ProbeFn | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._probe = probe or probe_in_subprocess
        self._report: HardwareReport | None = None
        self._speed: MachineSpeed | None = None
        self._measured: MachineSpeed | None = None  # written by the worker before it signals
        self._error = ""
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._signals = _ProbeSignals(self)
        self._signals.sig_done.connect(self._on_worker_done)
        self._signals.sig_error.connect(self._on_worker_error)

    @property
    def report(self) -> HardwareReport | None:
        return self._report

    @property
    def error(self) -> str:
        return self._error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def speed(self) -> MachineSpeed | None:
        """This machine's measured speeds (cached on disk), once a probe has finished."""
        return self._speed

    def set_speed(self, speed: MachineSpeed | None) -> None:
        """Use these speeds (tests, a hypothetical machine) instead of the measured ones."""
        self._speed = speed

    def machine(self) -> Machine | None:
        return machine_from_report(self._report) if self._report is not None else None

    def set_report(self, report: HardwareReport) -> None:
        """Use this report instead of probing (a hypothetical machine, or a report from elsewhere)."""
        self._generation += 1  # a probe still running must not overwrite it
        self._report = report
        self._error = ""
        self.sig_finished.emit(report)

    def start(self) -> bool:
        """Probe unless a report is cached or a probe runs; True if a probe was started."""
        if self._report is not None or self.running:
            return False
        return self.refresh()

    def refresh(self) -> bool:
        """Probe again, whatever is cached; False while a probe is already running."""
        if self.running:
            return False
        self._generation += 1
        self.sig_progress.emit("Looking at this computer…")
        self._thread = threading.Thread(
            target=self._run, args=(self._generation,), name="hardware-probe", daemon=True
        )
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the probe thread ends (app exit, tests); True if it has."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self, generation: int) -> None:
        try:
            report = self._probe()
        except Exception as exc:  # noqa: BLE001 - no exception may leave a thread silently
            log.exception("hardware probe failed")
            self._signals.sig_error.emit(
                generation,
                f"This computer's graphics card and memory could not be checked ({exc}). "
                "Models can still be downloaded and opened; sizes are shown without a fit check.",
            )
            return
        try:
            gpus = tuple((d.description or d.name, d.kind) for d in report.gpus) \
                if report.gpu_offload else ()
            self._measured = machine_speed(gpus)  # ~0.4 s the first time, then from the cache
        except Exception:  # noqa: BLE001 - without speeds the app only shows no predictions
            log.exception("speed measurement failed")
        self._signals.sig_done.emit(generation, report)

    def _on_worker_done(self, generation: int, report: HardwareReport) -> None:
        if generation != self._generation:
            return
        self.wait(5)
        self._report = report
        self._speed = self._measured or self._speed
        self._error = ""
        if report.warning:
            log.warning("%s", report.warning)
        self.sig_finished.emit(report)

    def _on_worker_error(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self.wait(5)
        self._error = message
        self.sig_failed.emit(message)
