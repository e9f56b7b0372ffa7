"""Microphone recording on Qt Multimedia: live level and elapsed time, a 30 s cap, a 16 kHz mono WAV.

No widgets here: the composer's mic button drives `start()` / `stop()` /
`cancel()` and shows `sig_level` / `sig_elapsed`. The clip is finished
(converted, checked for silence, hashed, written) on a short worker thread
so the GUI thread never waits on numpy or the disk.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

from PySide6.QtCore import QByteArray, QIODevice, QObject, Qt, QTimer, Signal, Slot

# QtAudio, not the older QAudio namespace: since Qt 6.7 QAudioSource reports QtAudio enums, which
# never compare equal to QAudio's.
from PySide6.QtMultimedia import QAudioDevice, QAudioFormat, QAudioSource, QMediaDevices, QtAudio

from app.core.media.errors import MAX_CLIP_SECONDS, NO_SOUND_MESSAGE, MediaError

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
_METER_INTERVAL_S = 0.04  # one level/elapsed update per 40 ms of audio: smooth, not chatty
_POLL_MS = 100
_NO_DATA_TIMEOUT_S = 3.0

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

    def __init__(self, parent: QObject | None = None, max_seconds: float = MAX_CLIP_SECONDS) -> None:
        super().__init__(parent)
        self._max_seconds = max_seconds
        self._source: QAudioSource | None = None
        self._io: QIODevice | None = None
        self._device_name = ""
        self._sample_format = "s16"
        self._channels = 1
        self._rate = _WANTED_RATE
        self._frame_bytes = 2
        self._chunks: list[bytes] = []
        self._remainder = b""
        self._frames = 0
        self._frames_at_last_meter = 0
        self._meter_buffer: list[bytes] = []
        self._last_data_at = 0.0
        self._saving = False
        self._poll = QTimer(self)
        self._poll.setInterval(_POLL_MS)
        self._poll.timeout.connect(self._on_poll_timeout)
        # The worker thread emits these; queued delivery brings them back to this object's thread.
        self._sig_saved.connect(self._on_worker_saved, Qt.ConnectionType.QueuedConnection)
        self._sig_save_failed.connect(self._on_worker_failed, Qt.ConnectionType.QueuedConnection)

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
        """True between start() and stop()/cancel()/the cap."""
        return self._source is not None

    @property
    def is_busy(self) -> bool:
        """Recording, or still saving the last clip."""
        return self._source is not None or self._saving

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
        self._frame_bytes = _audio().frame_bytes(sample_format, self._channels)
        self._reset_buffers()
        source = QAudioSource(device, fmt, self)
        source.stateChanged.connect(self._on_source_state_changed)
        self._source = source
        io = source.start()
        if io is None or source.error() != QtAudio.Error.NoError:
            self._discard_source()
            self.sig_failed.emit(_OPEN_FAILED_MESSAGE.format(name=self._device_name))
            return
        self._io = io
        io.readyRead.connect(self._on_io_ready_read)
        self._last_data_at = time.monotonic()
        self._poll.start()
        log.info("recording from %r at %d Hz, %d ch, %s", self._device_name, self._rate,
                 self._channels, sample_format)
        self.sig_started.emit()

    def stop(self) -> None:
        """Stop and finish the clip: sig_finished (or sig_failed for silence) follows."""
        if self._source is None:
            return
        self._drain()
        if self._source is not None:  # the drain may have hit the cap and finished already
            self._finish()

    def cancel(self) -> None:
        """Stop and throw the audio away."""
        if self._source is None:
            return
        self._discard_source()
        self._reset_buffers()
        self.sig_cancelled.emit()

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

    def _reset_buffers(self) -> None:
        self._chunks = []
        self._remainder = b""
        self._frames = 0
        self._frames_at_last_meter = 0
        self._meter_buffer = []

    @Slot()
    def _on_io_ready_read(self) -> None:
        self._drain()

    @Slot()
    def _on_poll_timeout(self) -> None:
        self._drain()
        if self._source is not None and time.monotonic() - self._last_data_at > _NO_DATA_TIMEOUT_S:
            self._discard_source()
            self._reset_buffers()
            self.sig_failed.emit(NO_DATA_MESSAGE)

    @Slot(QtAudio.State)
    def _on_source_state_changed(self, state: QtAudio.State) -> None:
        source = self._source
        if source is None or state != QtAudio.State.StoppedState:
            return
        if source.error() != QtAudio.Error.NoError:
            log.error("audio source stopped with %s", source.error())
            self._discard_source()
            self._reset_buffers()
            self.sig_failed.emit(_STOPPED_MESSAGE.format(name=self._device_name))

    def _drain(self) -> None:
        """Move what the device delivered into the clip; meter, elapsed time and the cap."""
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
        chunk = raw[:usable]
        cap_frames = int(self._max_seconds * self._rate)
        room = (cap_frames - self._frames) * self._frame_bytes
        if len(chunk) >= room:
            chunk = chunk[: max(0, room)]
        self._chunks.append(chunk)
        self._meter_buffer.append(chunk)
        self._frames += len(chunk) // self._frame_bytes
        if (self._frames - self._frames_at_last_meter) / self._rate >= _METER_INTERVAL_S:
            self._emit_meter()
        if self._frames >= cap_frames:
            log.info("recording reached the %.0f s cap", self._max_seconds)
            self._emit_meter()
            self._finish()

    def _emit_meter(self) -> None:
        recent = b"".join(self._meter_buffer)
        self._meter_buffer = []
        self._frames_at_last_meter = self._frames
        samples = _audio().pcm_to_float(recent, self._sample_format, self._channels)
        self.sig_level.emit(_audio().meter_level(samples) if len(samples) else 0.0)
        self.sig_elapsed.emit(self._frames / self._rate)

    def _discard_source(self) -> None:
        self._poll.stop()
        source, self._source, self._io = self._source, None, None
        if source is not None:
            source.stateChanged.disconnect(self._on_source_state_changed)
            source.stop()
            source.deleteLater()

    def _finish(self) -> None:
        self._discard_source()
        pcm = b"".join(self._chunks)
        self._reset_buffers()
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
