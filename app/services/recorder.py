"""Microphone recording on Qt Multimedia: live level and elapsed time, a 30 s cap, a 16 kHz mono WAV.

No widgets here: the composer's mic button drives `start()` / `stop()` /
`cancel()` and shows `sig_level` / `sig_elapsed`. The device is read and metered on its own
thread (app.services.mic_capture), and the clip is finished (converted, checked for silence,
hashed, written) on a short worker thread, so the GUI thread never waits on audio, numpy or disk.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

# QtAudio, not the older QAudio namespace: since Qt 6.7 QAudioSource reports QtAudio enums, which
# never compare equal to QAudio's.
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QMediaDevices

from app.core.media.errors import MAX_CLIP_SECONDS, NO_SOUND_MESSAGE, MediaError
from app.services.mic_capture import MicCapture

# app.core.media.audio brings numpy (~0.2 s): imported on the first recording, not at app start.


def _audio():  # type: ignore[no-untyped-def]
    from app.core.media import audio

    return audio

log = logging.getLogger(__name__)

NO_MICROPHONE_MESSAGE = (
    "No microphone was found \u2014 connect one (or enable it in the system sound settings) "
    "and try again"
)
NO_DATA_MESSAGE = (
    "The microphone is not sending any sound \u2014 check that it is connected and not used "
    "by another app, or choose another microphone in Settings"
)
_OPEN_FAILED_MESSAGE = (
    "The microphone \u201c{name}\u201d could not be opened \u2014 close other apps that use it, "
    "or choose another microphone in Settings"
)
_STOPPED_MESSAGE = (
    "The microphone \u201c{name}\u201d stopped working while recording \u2014 check that it is "
    "still connected and try again"
)
_WANTED_RATE = 16_000

_QT_FORMATS = {
    QAudioFormat.SampleFormat.UInt8: "u8",
    QAudioFormat.SampleFormat.Int16: "s16",
    QAudioFormat.SampleFormat.Int32: "s32",
    QAudioFormat.SampleFormat.Float: "f32",
}


class AudioInput(NamedTuple):
    """One microphone as the settings list shows it."""

    id: str
    description: str
    is_default: bool


def _device_id(device: QAudioDevice) -> str:
    return bytes(device.id().data()).decode("utf-8", errors="replace")


class MicrophoneRecorder(QObject):
    """Records one clip at a time from a microphone into a 16 kHz mono WAV in the attachments folder."""

    sig_started = Signal()
    sig_level = Signal(float)  # 0..1, RMS over the last ~40 ms on a 60 dB scale
    sig_elapsed = Signal(float)  # seconds of audio captured so far
    sig_finished = Signal(str, float)  # wav path, duration in seconds
    sig_failed = Signal(str)  # a message for the user
    sig_cancelled = Signal()
    _sig_saved = Signal(str, float)
    _sig_save_failed = Signal(str)
    _sig_stop = Signal()
    _sig_cancel = Signal()

    def __init__(self, parent: QObject | None = None, max_seconds: float = MAX_CLIP_SECONDS) -> None:
        super().__init__(parent)
        self._max_seconds = max_seconds
        self._capture: MicCapture | None = None
        self._gen = 0
        self._live = 0  # the number of the recording in progress; 0: none
        self._device_name = ""
        self._sample_format = "s16"
        self._channels = 1
        self._rate = _WANTED_RATE
        self._saving = False
        # The worker thread emits these; queued delivery brings them back to this object's thread.
        self._sig_saved.connect(self._on_worker_saved, Qt.ConnectionType.QueuedConnection)
        self._sig_save_failed.connect(self._on_worker_failed, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @staticmethod
    def devices() -> list[AudioInput]:
        """Microphones the system offers right now, the default one marked."""
        return [
            AudioInput(_device_id(device), device.description(), device.isDefault())
            for device in QMediaDevices.audioInputs()
        ]

    @property
    def max_seconds(self) -> float:
        """The cap; the countdown shows max_seconds - elapsed."""
        return self._max_seconds

    @property
    def is_recording(self) -> bool:
        """True between start() and the clip's end (stop, cancel, the cap or a failure)."""
        return self._capture is not None

    @property
    def is_busy(self) -> bool:
        """Recording, or still saving the last clip."""
        return self._capture is not None or self._saving

    def start(self, device_id: str | None = None) -> None:
        """Start recording from `device_id` (None or unknown: the system default microphone)."""
        if self.is_busy:
            log.warning("start() while already recording or saving; ignored")
            return
        device = self._pick_device(device_id)
        if device is None:
            self.sig_failed.emit(NO_MICROPHONE_MESSAGE)
            return
        self._device_name = device.description()
        fmt = QAudioFormat()
        fmt.setSampleRate(_WANTED_RATE)
        fmt.setChannelCount(1)
        fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        if not device.isFormatSupported(fmt):
            fmt = device.preferredFormat()  # converted to 16 kHz mono when the clip is finished
        sample_format = _QT_FORMATS.get(fmt.sampleFormat())
        if sample_format is None or fmt.sampleRate() <= 0 or fmt.channelCount() <= 0:
            self.sig_failed.emit(_OPEN_FAILED_MESSAGE.format(name=self._device_name))
            return
        self._sample_format = sample_format
        self._channels = fmt.channelCount()
        self._rate = fmt.sampleRate()
        self._gen += 1
        capture = MicCapture(self._gen, device, fmt, sample_format, self._max_seconds)
        # Owned by the application, not by Python or this recorder: a QThread destroyed while it
        # still runs aborts the process, and the recorder may go before its reader has stopped.
        thread = QThread(QCoreApplication.instance())
        thread.setObjectName("microphone")
        capture.moveToThread(thread)
        thread.started.connect(capture.open)
        thread.finished.connect(thread.deleteLater)
        # The thread (owned by the application) holds the reader until Qt deletes the thread:
        # the reader must not go while its thread still runs.
        thread.reader = capture  # type: ignore[attr-defined]
        capture.sig_opened.connect(self._on_opened)
        capture.sig_meter.connect(self._on_meter)
        capture.sig_ended.connect(self._on_ended)
        capture.sig_failed.connect(self._on_capture_failed)
        self._sig_stop.connect(capture.stop)
        self._sig_cancel.connect(capture.cancel)
        self._capture, self._live = capture, self._gen
        thread.start()
        # At once, so the mic button answers the click; a device that then fails to open is
        # reported by sig_failed, as a microphone that stops mid-recording is.
        self.sig_started.emit()

    def stop(self) -> None:
        """Stop and finish the clip: sig_finished (or sig_failed for silence) follows."""
        if self._capture is not None:
            self._sig_stop.emit()

    def cancel(self) -> None:
        """Stop and throw the audio away."""
        if self._capture is None:
            return
        self._sig_cancel.emit()
        self._release()
        self.sig_cancelled.emit()

    @Slot()
    def shutdown(self) -> None:
        """At exit: end a recording and wait (briefly) for the reader thread."""
        self.cancel()

    def _pick_device(self, device_id: str | None) -> QAudioDevice | None:
        inputs = QMediaDevices.audioInputs()
        if not inputs:
            return None
        if device_id:
            for device in inputs:
                if _device_id(device) == device_id:
                    return device
            # A microphone chosen in Settings and unplugged since: use the default one.
            log.warning("microphone %r not found; using the default one", device_id)
        default = QMediaDevices.defaultAudioInput()
        if not default.isNull() and any(_device_id(d) == _device_id(default) for d in inputs):
            return default
        return inputs[0]

    def _release(self) -> None:
        # Only forget it: the reader closes itself and quits its thread (now, or on the queued
        # cancel); the thread then deletes itself. No join here: Qt Multimedia may need this
        # thread while the reader stops, so waiting for it could deadlock.
        self._capture, self._live = None, 0

    def _current(self, gen: int) -> bool:
        # A signal from a recording already cancelled or replaced is stale: drop it.
        return self._live != 0 and gen == self._live

    @Slot(int)
    def _on_opened(self, gen: int) -> None:
        if self._current(gen):
            log.info("recording from %r at %d Hz, %d ch, %s", self._device_name, self._rate,
                     self._channels, self._sample_format)

    @Slot(int, float, float)
    def _on_meter(self, gen: int, level: float, elapsed: float) -> None:
        if self._current(gen):
            self.sig_level.emit(level)
            self.sig_elapsed.emit(elapsed)

    @Slot(int, str)
    def _on_capture_failed(self, gen: int, why: str) -> None:
        if not self._current(gen):
            return
        self._release()
        if why == "no data":
            self.sig_failed.emit(NO_DATA_MESSAGE)
        elif why == "stopped":
            self.sig_failed.emit(_STOPPED_MESSAGE.format(name=self._device_name))
        else:
            self.sig_failed.emit(_OPEN_FAILED_MESSAGE.format(name=self._device_name))

    @Slot(int, object)
    def _on_ended(self, gen: int, pcm: bytes) -> None:
        if not self._current(gen):
            return
        self._release()
        self.sig_level.emit(0.0)
        self._saving = True
        worker = threading.Thread(
            target=self._save_clip,
            args=(pcm, self._sample_format, self._channels, self._rate),
            name="recorder-save",
            daemon=True,
        )
        worker.start()

    def _save_clip(self, pcm: bytes, sample_format: str, channels: int, rate: int) -> None:
        """Worker thread: PCM -> 16 kHz mono clip -> WAV in the attachments folder."""
        try:
            frames = _audio().pcm_to_float(pcm, sample_format, channels)
            clip = _audio().clip_from_recording(frames, rate, max_seconds=self._max_seconds)
            path = clip.store()
            self._sig_saved.emit(str(path), clip.duration_s)
        except MediaError as exc:
            self._sig_save_failed.emit(exc.user_message)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the user, not vanish
            log.exception("saving the recording failed")
            self._sig_save_failed.emit(
                f"The recording could not be saved ({exc}) \u2014 check free disk space and try again"
            )

    @Slot(str, float)
    def _on_worker_saved(self, path: str, duration: float) -> None:
        self._saving = False
        self.sig_finished.emit(path, duration)

    @Slot(str)
    def _on_worker_failed(self, message: str) -> None:
        self._saving = False
        self.sig_failed.emit(message or NO_SOUND_MESSAGE)
