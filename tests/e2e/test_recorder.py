"""The microphone recorder on a real PulseAudio server whose microphone is a FIFO we feed.

Speech comes from espeak-ng; what the recorder saved is compared with what
was played (length and normalised cross-correlation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.core import paths
from app.core.media.audio import NO_SOUND_MESSAGE
from app.services.recorder import NO_DATA_MESSAGE, NO_MICROPHONE_MESSAGE, MicrophoneRecorder
from tests.fixtures.pulse import RATE, SOURCE_NAME, PulseServer, pulse  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "Hello Gemma, please describe this picture of a red bicycle."],
        check=True, timeout=30, capture_output=True,
    )
    return path


@pytest.fixture
def recorder(qtbot, pulse: PulseServer):  # noqa: F811 - pulse is the imported fixture
    rec = MicrophoneRecorder()
    yield rec
    if rec.is_recording:
        rec.cancel()
    qtbot.waitUntil(lambda: not rec.is_busy, timeout=5000)
    assert pulse.feeder is not None
    pulse.feeder.clear()


def _ncc_peak(reference: np.ndarray, recording: np.ndarray) -> tuple[float, int]:
    """Best normalised cross-correlation of `reference` inside `recording`, and its lag in samples."""
    ref = reference.astype(np.float64)
    rec = recording.astype(np.float64)
    if len(rec) < len(ref):
        rec = np.concatenate([rec, np.zeros(len(ref) - len(rec))])
    size = 1 << int(np.ceil(np.log2(len(rec) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = len(rec) - len(ref) + 1
    energy = np.concatenate([[0.0], np.cumsum(rec * rec)])
    window = energy[len(ref) : len(ref) + lags] - energy[:lags]
    ncc = corr[:lags] / (np.linalg.norm(ref) * np.sqrt(np.maximum(window, 1e-12)))
    best = int(np.argmax(ncc))
    return float(ncc[best]), best


def test_device_list_shows_the_fifo_microphone_as_default(recorder: MicrophoneRecorder) -> None:
    devices = MicrophoneRecorder.devices()
    fifo = [d for d in devices if d.id == SOURCE_NAME]
    assert len(fifo) == 1, devices
    assert "FIFO" in fifo[0].description
    assert fifo[0].is_default


def test_recorded_speech_matches_what_was_played(
    qtbot, recorder: MicrophoneRecorder, pulse: PulseServer, speech: Path  # noqa: F811
) -> None:
    levels: list[float] = []
    elapsed: list[float] = []
    recorder.sig_level.connect(levels.append)
    recorder.sig_elapsed.connect(elapsed.append)
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start()
    started = time.monotonic()
    assert pulse.feeder is not None
    play_at, played = pulse.play_wav(speech)
    qtbot.waitUntil(lambda: pulse.feeder.queued_seconds() == 0, timeout=20000)
    # The tail of the speech travels through PulseAudio and Qt's buffer: wait until it is in.
    speech_end = play_at - started + len(played) / RATE
    qtbot.waitUntil(lambda: bool(elapsed) and elapsed[-1] >= speech_end + 0.3, timeout=10000)
    with qtbot.waitSignal(recorder.sig_finished, timeout=10000) as finished:
        recorder.stop()
    stopped = time.monotonic()
    wav_path, duration = finished.args
    path = Path(wav_path)
    assert path.parent == paths.attachments_dir()
    info = sf.info(path)
    assert (info.samplerate, info.channels) == (16000, 1)
    assert abs(info.frames / info.samplerate - duration) < 1e-6
    assert abs(duration - (stopped - started)) < 0.5  # we got (about) all the time we recorded
    recorded, _ = sf.read(path, dtype="float32")
    score, lag = _ncc_peak(played, recorded)
    assert score > 0.9, f"speech not found in the recording (ncc {score:.3f})"
    assert abs(lag / RATE - (play_at - started)) < 0.5  # and where it was played
    assert max(levels) > 0.4 and min(levels) == 0.0  # the meter moved, and dropped at the end
    assert elapsed == sorted(elapsed) and elapsed[-1] > len(played) / RATE


def test_silence_gives_the_no_sound_message(qtbot, recorder: MicrophoneRecorder) -> None:
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start(SOURCE_NAME)
    elapsed: list[float] = []
    recorder.sig_elapsed.connect(elapsed.append)
    qtbot.waitUntil(lambda: bool(elapsed) and elapsed[-1] >= 1.2, timeout=10000)
    with qtbot.waitSignal(recorder.sig_failed, timeout=10000) as failed:
        recorder.stop()
    assert failed.args == [NO_SOUND_MESSAGE]
    assert not list(paths.attachments_dir().glob("*.wav"))


def test_cancel_discards_the_clip(qtbot, recorder: MicrophoneRecorder, pulse: PulseServer) -> None:  # noqa: F811
    finished: list[object] = []
    recorder.sig_finished.connect(lambda *args: finished.append(args))
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start("no-such-microphone")  # an unplugged choice falls back to the default
    assert pulse.feeder is not None
    levels: list[float] = []
    recorder.sig_level.connect(levels.append)
    pulse.feeder.play_samples(0.3 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE))
    qtbot.waitUntil(lambda: max(levels, default=0.0) > 0.3, timeout=10000)  # the tone is in
    # No clip, not even a late one from the reader thread.
    with qtbot.assertNotEmitted(recorder.sig_finished, wait=300), \
            qtbot.waitSignal(recorder.sig_cancelled, timeout=2000):
        recorder.cancel()
    assert not recorder.is_busy and not finished
    assert not list(paths.attachments_dir().glob("*.wav"))


def test_a_microphone_that_sends_nothing_is_reported(
    qtbot, recorder: MicrophoneRecorder, pulse: PulseServer  # noqa: F811
) -> None:
    assert pulse.feeder is not None
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start()
    pulse.feeder.paused.set()
    try:
        with qtbot.waitSignal(recorder.sig_failed, timeout=8000) as failed:
            pass
    finally:
        pulse.feeder.paused.clear()
    assert failed.args == [NO_DATA_MESSAGE]
    assert not recorder.is_recording


_CHILD_WITHOUT_MICROPHONE = """
from PySide6.QtCore import QCoreApplication, QTimer
from app.services.recorder import MicrophoneRecorder
app = QCoreApplication([])
recorder = MicrophoneRecorder()
recorder.sig_failed.connect(lambda message: (print("FAILED:" + message, flush=True), app.quit()))
recorder.sig_started.connect(lambda: (print("STARTED", flush=True), app.quit()))
print("DEVICES:%d" % len(MicrophoneRecorder.devices()), flush=True)
QTimer.singleShot(0, recorder.start)
QTimer.singleShot(5000, app.quit)
app.exec()
"""


def test_no_microphone_at_all(pulse: PulseServer, tmp_path: Path) -> None:  # noqa: F811
    # Qt Multimedia binds to one sound server per process, so this runs in a child
    # process whose PulseAudio has speakers but no microphone.
    bare = PulseServer(microphone=False).start()
    try:
        env = dict(os.environ, **bare.client_env(), GEMMA_DESKTOP_HOME=str(tmp_path / "home"))
        result = subprocess.run(
            [sys.executable, "-c", _CHILD_WITHOUT_MICROPHONE], env=env, cwd=Path(__file__).parents[2],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        bare.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "DEVICES:0" in lines, result.stdout
    assert f"FAILED:{NO_MICROPHONE_MESSAGE}" in lines, result.stdout


def test_recording_stops_itself_at_30_seconds(
    qtbot, recorder: MicrophoneRecorder, pulse: PulseServer, speech: Path  # noqa: F811
) -> None:
    assert pulse.feeder is not None
    elapsed: list[float] = []
    recorder.sig_elapsed.connect(elapsed.append)
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start()
    while pulse.feeder.queued_seconds() < 32:  # 32 s of speech, back to back
        pulse.play_wav(speech)
    with qtbot.waitSignal(recorder.sig_finished, timeout=45000) as finished:
        pass  # nobody calls stop(): the cap does
    wav_path, duration = finished.args
    assert duration == pytest.approx(30.0, abs=1e-3)
    assert sf.info(wav_path).frames == 30 * 16000
    assert not recorder.is_recording
    assert 29.9 <= elapsed[-1] <= 30.0


def test_a_gui_stall_loses_no_audio(
    qtbot, recorder: MicrophoneRecorder, pulse: PulseServer  # noqa: F811
) -> None:
    # The microphone is read off the GUI thread: a long stall there (a slow slot, a modal
    # dialog opening) must not overflow the audio buffer and cut a hole in the clip.
    assert pulse.feeder is not None
    with qtbot.waitSignal(recorder.sig_started, timeout=5000):
        recorder.start(SOURCE_NAME)
    started = time.monotonic()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * RATE) / RATE)
    pulse.feeder.play_samples(tone)
    time.sleep(2.5)  # the fault under test: the GUI thread does not return to its event loop
    qtbot.waitUntil(lambda: pulse.feeder.queued_seconds() == 0, timeout=10000)
    with qtbot.waitSignal(recorder.sig_finished, timeout=10000) as finished:
        recorder.stop()
    stopped = time.monotonic()
    _, duration = finished.args
    assert abs(duration - (stopped - started)) < 0.5, (duration, stopped - started)
