"""The microphone's reader: owns the QAudioSource on its own thread, meters the sound, keeps the cap.

It runs off the GUI thread so that a GUI stall (a slow slot, a dialog opening) cannot overflow
Qt's small capture buffer and cut a hole in the clip, and so that the level meter's numpy work
every 40 ms never competes with painting.
"""

from __future__ import annotations

import logging
import time

import shiboken6
from PySide6.QtCore import (
    QByteArray,
    QCoreApplication,
    QIODevice,
    QMetaObject,
    QObject,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSource, QtAudio

log = logging.getLogger(__name__)

METER_INTERVAL_S = 0.04  # one level/elapsed update per 40 ms of audio: smooth, not chatty
_POLL_MS = 100
NO_DATA_TIMEOUT_S = 3.0


def _audio():  # type: ignore[no-untyped-def]
    from app.core.media import audio

    return audio


class MicCapture(QObject):
    """One recording's reader; every signal is queued back to the recorder on the GUI thread."""

    # Each signal carries the recording's number, so a late one from a cancelled recording is
    # recognised and dropped by the recorder.
    sig_opened = Signal(int)
    sig_meter = Signal(int, float, float)  # level 0..1, seconds captured so far
    sig_ended = Signal(int, object)  # the PCM bytes of the whole clip (stopped or the cap)
    sig_failed = Signal(int, str)  # "open", "stopped" or "no data": the recorder words it

    def __init__(self, gen: int, device: QAudioDevice, fmt: QAudioFormat, sample_format: str,
                 max_seconds: float) -> None:
        super().__init__()
        self.gen = gen
        self._device, self._format = device, fmt
        self._sample_format = sample_format
        self._channels, self._rate = fmt.channelCount(), fmt.sampleRate()
        self._frame_bytes = _audio().frame_bytes(sample_format, self._channels)
        self._cap_frames = int(max_seconds * self._rate)
        self._source: QAudioSource | None = None
        self._io: QIODevice | None = None
        self._chunks: list[bytes] = []
        self._meter_buffer: list[bytes] = []
        self._remainder = b""
        self._frames = 0
        self._frames_at_last_meter = 0
        self._last_data_at = 0.0
        self._poll: QTimer | None = None
        self._closing = False
        self._dying: QAudioSource | None = None

    @Slot()
    def open(self) -> None:
        """On the capture thread: open the device and start reading."""
        source = QAudioSource(self._device, self._format, self)
        source.stateChanged.connect(self._on_state_changed)
        self._source = source
        io = source.start()
        if io is None or source.error() != QtAudio.Error.NoError:
            self._close()
            self.sig_failed.emit(self.gen, "open")
            return
        self._io = io
        io.readyRead.connect(self._drain)
        self._last_data_at = time.monotonic()
        self._poll = QTimer(self)
        self._poll.setInterval(_POLL_MS)
        self._poll.timeout.connect(self._on_poll)
        self._poll.start()
        self.sig_opened.emit(self.gen)

    @Slot()
    def stop(self) -> None:
        """Take what the device still holds, close it and hand over the clip."""
        if self._source is None:
            return
        self._drain()
        if self._source is not None:  # the drain may have hit the cap and ended already
            self._end()

    @Slot()
    def cancel(self) -> None:
        self._close()
        self._chunks = []

    @Slot()
    def _drain(self) -> None:
        if self._io is None:
            return
        data: QByteArray = self._io.readAll()
        if data.isEmpty():
            return
        self._last_data_at = time.monotonic()
        raw = self._remainder + bytes(data.data())
        usable = len(raw) - len(raw) % self._frame_bytes
        self._remainder = raw[usable:]
        if not usable:
            return
        room = (self._cap_frames - self._frames) * self._frame_bytes
        chunk = raw[: min(usable, max(0, room))]
        self._chunks.append(chunk)
        self._meter_buffer.append(chunk)
        self._frames += len(chunk) // self._frame_bytes
        if (self._frames - self._frames_at_last_meter) / self._rate >= METER_INTERVAL_S:
            self._emit_meter()
        if self._frames >= self._cap_frames:
            log.info("recording reached the cap")
            self._emit_meter()
            self._end()

    def _emit_meter(self) -> None:
        recent = b"".join(self._meter_buffer)
        self._meter_buffer = []
        self._frames_at_last_meter = self._frames
        samples = _audio().pcm_to_float(recent, self._sample_format, self._channels)
        level = _audio().meter_level(samples) if len(samples) else 0.0
        self.sig_meter.emit(self.gen, float(level), self._frames / self._rate)

    @Slot()
    def _on_poll(self) -> None:
        self._drain()
        if self._source is not None and time.monotonic() - self._last_data_at > NO_DATA_TIMEOUT_S:
            self.cancel()
            self.sig_failed.emit(self.gen, "no data")

    @Slot(QtAudio.State)
    def _on_state_changed(self, state: QtAudio.State) -> None:
        source = self._source
        if source is None or state != QtAudio.State.StoppedState:
            return
        if source.error() != QtAudio.Error.NoError:
            log.error("audio source stopped with %s", source.error())
            self.cancel()
            self.sig_failed.emit(self.gen, "stopped")

    def _end(self) -> None:
        self._close()
        pcm = b"".join(self._chunks)
        self._chunks = []
        self.sig_ended.emit(self.gen, pcm)

    def _close(self) -> None:
        if self._poll is not None:
            self._poll.stop()
        source, self._source, self._io = self._source, None, None
        if source is not None:
            source.stateChanged.disconnect(self._on_state_changed)
            source.stop()
        if self._closing:
            return
        self._closing = True
        # Torn down from the event loop, not here: this may run inside the source's own
        # readyRead (the cap), where deleting the source would pull it from under Qt.
        self._dying = source
        QMetaObject.invokeMethod(self, "_teardown", Qt.ConnectionType.QueuedConnection)

    @Slot()
    def _teardown(self) -> None:
        """On this thread: delete what belongs to it, hand this object back, end the thread."""
        if self._dying is not None:
            shiboken6.delete(self._dying)
            self._dying = None
        if self._poll is not None:
            shiboken6.delete(self._poll)
            self._poll = None
        thread = self.thread()
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())  # so the GUI side may delete it
        thread.quit()
