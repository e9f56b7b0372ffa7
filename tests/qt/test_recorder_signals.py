"""Recorder signals as the mic button and meter use them, on the private PulseAudio microphone."""

from __future__ import annotations

import numpy as np
import pytest

from app.services.recorder import MicrophoneRecorder
from tests.fixtures.pulse import RATE, PulseServer, pulse  # noqa: F401 - the fixture


def _tone(rms_dbfs: float, seconds: float) -> np.ndarray:
    amplitude = 10 ** (rms_dbfs / 20) * np.sqrt(2)
    return amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)


def test_meter_follows_loudness_and_updates_smoothly(qtbot, pulse: PulseServer) -> None:  # noqa: F811
    assert pulse.feeder is not None
    recorder = MicrophoneRecorder()
    levels: list[tuple[float, float]] = []
    elapsed: list[float] = []
    recorder.sig_elapsed.connect(elapsed.append)
    recorder.sig_level.connect(lambda level: levels.append((elapsed[-1] if elapsed else 0.0, level)))
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start()
    pulse.feeder.play_samples(np.concatenate([_tone(-6, 0.8), _tone(-30, 0.8)]))
    qtbot.waitUntil(lambda: pulse.feeder.queued_seconds() == 0, timeout=5000)
    # The last tone travels through PulseAudio and Qt's buffer: wait until it is recorded.
    qtbot.waitUntil(lambda: bool(elapsed) and elapsed[-1] >= 2.0, timeout=5000)
    with qtbot.waitSignal(recorder.sig_finished, timeout=5000) as finished:
        recorder.stop()
    _, duration = finished.args
    # One update per ~40 ms of audio: enough for a smooth meter, few enough for the GUI thread.
    assert 0.6 * duration / 0.04 <= len(elapsed) <= 1.3 * duration / 0.04 + 2
    loud = [level for _, level in levels if level > 0.75]
    middle = [level for _, level in levels if 0.45 <= level <= 0.55]
    assert len(loud) >= 10, levels  # -6 dBFS -> 0.9 on the 60 dB scale
    assert len(middle) >= 10, levels  # -30 dBFS -> 0.5
    assert max(level for _, level in levels) == pytest.approx(0.9, abs=0.03)


def test_start_twice_and_idle_stop_are_harmless(qtbot, pulse: PulseServer) -> None:  # noqa: F811
    recorder = MicrophoneRecorder()
    started: list[bool] = []
    recorder.sig_started.connect(lambda: started.append(True))
    recorder.stop()
    recorder.cancel()
    assert not recorder.is_busy
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start()
    recorder.start()  # ignored: one clip at a time
    assert started == [True] and recorder.is_recording
    with qtbot.waitSignal(recorder.sig_cancelled, timeout=2000):
        recorder.cancel()
    assert not recorder.is_recording
