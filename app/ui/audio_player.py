"""Playing an attached clip through QAudioSink (our clips are WAV: no media framework needed)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, Signal, Slot
from PySide6.QtMultimedia import QtAudio


class AudioPlayer(QObject):
    """Plays a clip's PCM through QAudioSink (our clips are WAV; no media framework needed).

    Not QMediaPlayer: its FFmpeg backend destroys objects on its own thread, which can deadlock
    against Python holding the GIL on the GUI thread (seen in tests).
    """

    sig_state_changed = Signal(bool)  # playing

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sink: Any = None
        self._buffer: QBuffer | None = None

    @property
    def playing(self) -> bool:
        return self._sink is not None and self._sink.state() == QtAudio.State.ActiveState

    def toggle(self, path: str) -> None:
        if self.playing:
            self.stop()
            return
        self._start(path)

    def _start(self, path: str) -> None:
        import numpy as np
        import soundfile as sf
        from PySide6.QtMultimedia import QAudioFormat, QAudioSink, QMediaDevices

        self._release()
        try:
            data, rate = sf.read(path, dtype="int16", always_2d=True)
        except (OSError, RuntimeError, ValueError):
            self.sig_state_changed.emit(False)  # a missing or unreadable clip simply does not play
            return
        mono = data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0]
        fmt = QAudioFormat()
        fmt.setSampleRate(int(rate))
        fmt.setChannelCount(1)
        fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        self._buffer = QBuffer(self)
        self._buffer.setData(QByteArray(mono.tobytes()))
        self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._sink = QAudioSink(QMediaDevices.defaultAudioOutput(), fmt, self)
        self._sink.stateChanged.connect(self._on_sink_state_changed)
        self._sink.start(self._buffer)

    def stop(self) -> None:
        if self._sink is not None:
            self._sink.stop()

    def _release(self) -> None:
        if self._sink is not None:
            self._sink.stateChanged.disconnect(self._on_sink_state_changed)
            self._sink.stop()
            self._sink.deleteLater()
            self._sink = None
        if self._buffer is not None:
            self._buffer.close()
            self._buffer.deleteLater()
            self._buffer = None

    @Slot(QtAudio.State)
    def _on_sink_state_changed(self, state: QtAudio.State) -> None:
        if state == QtAudio.State.IdleState and self._sink is not None:
            self._sink.stop()  # the whole clip was played
            return
        self.sig_state_changed.emit(self.playing)
