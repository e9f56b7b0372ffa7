"""Download jobs for the GUI: the core downloader in a worker thread, reported as Qt signals.

A job is what the user sees as one download: usually a model and its projector, fetched one after the
other with one progress bar over both. Pause stops the transfer and keeps the partial files; Resume
starts a new worker that continues from the exact byte; Cancel deletes the partial files.
"""

from __future__ import annotations

import logging
import threading
from enum import Enum

from PySide6.QtCore import QObject, Signal

from app.core.download import (
    DownloadCancelled,
    DownloadError,
    DownloadPaused,
    ModelStore,
    Progress,
)

log = logging.getLogger(__name__)

FileSpec = tuple[str, str, str]  # (repo_id, filename, revision)


class JobState(Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class _WorkerSignals(QObject):
    """Lives in the GUI thread; emitted from the worker thread, so every connection is queued.

    Each carries the worker's generation: a Pause quickly followed by Resume starts a new worker,
    and the old one's late "paused" must not be taken for the new one's.
    """

    # "qint64", not int: a Signal(int) is a C++ int and mangles sizes over 2 GiB.
    sig_progress = Signal(int, "qint64", "qint64", float, float)  # type: ignore[arg-type]
    sig_finished = Signal(int, list)
    sig_failed = Signal(int, str)
    sig_paused = Signal(int)
    sig_cancelled = Signal(int)


class DownloadJob(QObject):
    """Download one or more Hub files into a ModelStore off the GUI thread."""

    # done, total, bytes/s, eta s (-1: unknown)
    sig_progress = Signal("qint64", "qint64", float, float)  # type: ignore[arg-type]
    sig_finished = Signal(str)  # path of the first file (the model)
    sig_failed = Signal(str)  # a message for the user
    sig_paused = Signal()
    sig_cancelled = Signal()

    def __init__(
        self, store: ModelStore, files: list[FileSpec], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        if not files:
            raise ValueError("a download job needs at least one file")
        self.store = store
        self.files = list(files)
        self.state = JobState.IDLE
        self.paths: list[str] = []
        self.last_progress: tuple[int, int, float, float] = (0, 0, 0.0, -1.0)
        self._pause = threading.Event()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._signals = _WorkerSignals(self)
        self._signals.sig_progress.connect(self._on_worker_progress)
        self._signals.sig_finished.connect(self._on_worker_finished)
        self._signals.sig_failed.connect(self._on_worker_failed)
        self._signals.sig_paused.connect(self._on_worker_paused)
        self._signals.sig_cancelled.connect(self._on_worker_cancelled)

    @property
    def name(self) -> str:
        return self.files[0][1]

    def is_running(self) -> bool:
        return self.state is JobState.RUNNING

    # ----- controls (GUI thread) ---------------------------------------------------------------
    def start(self) -> None:
        """Start, or resume after a pause, a failure or an app restart (partial files are reused)."""
        if self.state is JobState.RUNNING and not self._pause.is_set():
            return
        self._join()  # a worker that is pausing ends within one chunk
        self._pause = threading.Event()
        self._cancel = threading.Event()
        self._generation += 1
        self.state = JobState.RUNNING
        self._thread = threading.Thread(
            target=self._run, args=(self._generation, self._pause, self._cancel),
            name=f"download-{self.name}", daemon=True,
        )
        self._thread.start()

    def resume(self) -> None:
        self.start()

    def pause(self) -> None:
        if self.state is JobState.RUNNING:
            self._pause.set()

    def cancel(self) -> None:
        """Stop and delete the partial files; a finished download is left alone."""
        if self.state is JobState.RUNNING:
            self._cancel.set()
        elif self.state in (JobState.IDLE, JobState.PAUSED, JobState.FAILED):
            for repo_id, filename, _rev in self.files:
                self.store.discard_partial(repo_id, filename)
            self.state = JobState.CANCELLED
            self.sig_cancelled.emit()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread ends (app shutdown, tests); True if it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ----- worker thread -----------------------------------------------------------------------
    def _run(self, gen: int, pause: threading.Event, cancel: threading.Event) -> None:
        signals = self._signals
        try:
            remotes = self.store.plan(self.files, cancel)
            total = sum(r.size for r in remotes)
            base = 0
            paths: list[str] = []
            for remote in remotes:
                def on_progress(p: Progress, base: int = base) -> None:
                    done = base + p.done
                    eta = (total - done) / p.bytes_per_s if p.bytes_per_s > 0 else -1.0
                    signals.sig_progress.emit(gen, done, total, p.bytes_per_s, eta)

                path = self.store.download(
                    remote.repo_id, remote.filename, remote.revision,
                    on_progress=on_progress, cancel=cancel, pause=pause,
                    remote=remote,
                )
                paths.append(str(path))
                base += remote.size
            signals.sig_progress.emit(gen, total, total, 0.0, 0.0)
            signals.sig_finished.emit(gen, paths)
        except DownloadPaused:
            signals.sig_paused.emit(gen)
        except DownloadCancelled:
            for repo_id, filename, _rev in self.files:
                if self.store.find(repo_id, filename) is None:
                    self.store.discard_partial(repo_id, filename)
            signals.sig_cancelled.emit(gen)
        except DownloadError as exc:
            log.warning("download of %s failed: %s", self.name, exc)
            signals.sig_failed.emit(gen, str(exc))
        except Exception as exc:  # noqa: BLE001 - no exception may leave a thread silently
            log.exception("download of %s crashed", self.name)
            signals.sig_failed.emit(
                gen,
                f"Downloading {self.name} failed unexpectedly ({type(exc).__name__}: {exc}). "
                "Press Resume to try again; the details are in the log file."
            )

    # ----- slots (GUI thread) ------------------------------------------------------------------
    def _on_worker_progress(self, gen: int, done: int, total: int, speed: float, eta: float) -> None:
        if gen != self._generation:
            return
        self.last_progress = (done, total, speed, eta)
        self.sig_progress.emit(done, total, speed, eta)

    def _on_worker_finished(self, gen: int, paths: list[str]) -> None:
        if gen != self._generation:
            return
        self._join()
        self.paths = paths
        self.state = JobState.FINISHED
        self.sig_finished.emit(paths[0])

    def _on_worker_failed(self, gen: int, message: str) -> None:
        if gen != self._generation:
            return
        self._join()
        self.state = JobState.FAILED
        self.sig_failed.emit(message)

    def _on_worker_paused(self, gen: int) -> None:
        if gen != self._generation:
            return
        self._join()
        if self._cancel.is_set():  # Cancel pressed while the worker was pausing
            self.state = JobState.PAUSED
            self.cancel()
            return
        self.state = JobState.PAUSED
        self.sig_paused.emit()

    def _on_worker_cancelled(self, gen: int) -> None:
        if gen != self._generation:
            return
        self._join()
        self.state = JobState.CANCELLED
        self.sig_cancelled.emit()

    def _join(self) -> None:
        # The worker emits its last signal as its final act, so this join is immediate.
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class DownloadManager(QObject):
    """The app's download jobs by key (a catalog id, say); one job per key at a time."""

    sig_job_added = Signal(str)

    def __init__(self, store: ModelStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._jobs: dict[str, DownloadJob] = {}

    def job(self, key: str) -> DownloadJob | None:
        return self._jobs.get(key)

    def jobs(self) -> dict[str, DownloadJob]:
        return dict(self._jobs)

    def download(self, key: str, files: list[FileSpec], start: bool = True) -> DownloadJob:
        """The job for ``key`` (created if new or if the old one ended), started unless asked not to."""
        job = self._jobs.get(key)
        if job is None or job.state in (JobState.FINISHED, JobState.CANCELLED):
            job = DownloadJob(self.store, files, self)
            self._jobs[key] = job
            self.sig_job_added.emit(key)
        if start:
            job.start()
        return job

    def shutdown(self, timeout: float = 10.0) -> None:
        """Pause every running job and wait for its thread (app exit): partial files stay resumable."""
        for job in self._jobs.values():
            job.pause()
        for job in self._jobs.values():
            job.wait(timeout)
