"""Download progress: throttled reports with the recent speed, and no position left unreported."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Bytes so far out of total, the recent speed and the time left (-1 when not known yet)."""

    done: int
    total: int
    bytes_per_s: float
    eta_s: float


ProgressFn = Callable[[Progress], None]


class Meter:
    """Reports at most once per ``interval``, with speed over a sliding window of a few seconds.

    A throttled update is not dropped: it is reported when the interval is up, from a timer,
    because the next read may block for a long time (a stalled server) and the position reached
    before it must be on screen meanwhile, not the one from the start of the burst.
    """

    def __init__(self, total: int, start: int, fn: ProgressFn | None, interval: float) -> None:
        self.total = total
        self.fn = fn
        self.interval = interval
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), start)])
        self.last_emit = 0.0
        self._lock = threading.Lock()
        self._pending: int | None = None
        self._timer: threading.Timer | None = None
        self._closed = False

    def update(self, done: int, force: bool = False) -> None:
        if self.fn is None:
            return
        with self._lock:
            if self._closed:
                return
            wait = self.interval - (time.monotonic() - self.last_emit)
            if force or wait <= 0:
                self._emit(done)
                return
            self._pending = done
            if self._timer is None:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def restart(self, done: int) -> None:
        """After a retry wait, so the pause does not read as a slow connection forever."""
        with self._lock:
            self.samples = deque([(time.monotonic(), done)])

    def close(self) -> None:
        """No report after this one: the transfer ended (finished, paused, cancelled or failed)."""
        with self._lock:
            self._closed = True
            self._cancel_timer()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._pending is not None and not self._closed:
                self._emit(self._pending)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None

    def _emit(self, done: int) -> None:
        # Under the lock: reports from the reading thread and the timer stay in order.
        assert self.fn is not None
        self._cancel_timer()
        now = time.monotonic()
        self.last_emit = now
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        speed = (done - d0) / (now - t0) if now > t0 else 0.0
        eta = (self.total - done) / speed if speed > 0 else -1.0
        self.fn(Progress(done, self.total, speed, eta))
