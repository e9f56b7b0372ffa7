"""The mic button on a REAL microphone: a private PulseAudio whose FIFO source we feed espeak-ng speech.

Click toggles, holding is push-to-talk, the shortcut toggles, Esc cancels, silence is reported,
and a model without audio input and no E-series model installed says what to download.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import soundfile as sf
from PySide6.QtCore import Qt

from app.core.chat.session import ChatSession
from app.core.media.audio import NO_SOUND_MESSAGE
from app.core.storage.history import HistoryStore
from app.services.transcriber import find_transcription_model
from app.ui.attachments import AudioChip
from app.ui.main_window import MainWindow
from app.ui.voice import IDLE, PUSH_TO_TALK, RECORDING
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401 - the fixture
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401 - the fixture
from tests.qt.screenshots import MODEL_INFO, FakeEngineClient, make_settings


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "What is in this picture?"], check=True,
                   timeout=30, capture_output=True)
    return path


@pytest.fixture
def env(qtbot, tmp_path: Path, pulse: PulseServer):  # noqa: F811 - the imported fixture
    store = HistoryStore(tmp_path / "history.db")
    client = FakeEngineClient()
    window = MainWindow(make_settings(), store, ChatSession(store), client)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    client.loaded()
    yield window, client, pulse
    window.media.shutdown()
    qtbot.waitUntil(lambda: not window.media.recorder.is_busy, timeout=5000)
    assert pulse.feeder is not None
    pulse.feeder.clear()
    window.close()
    store.close()


def _chips(window: MainWindow) -> list:
    return window.media.strip.chips()


def test_click_starts_and_click_stops_with_meter_and_countdown(qtbot, env, speech) -> None:
    window, client, pulse_server = env
    mic, voice, bar = window.composer.mic_button, window.media.voice, window.media.recording_bar
    qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
    assert voice.state == RECORDING and bar.isVisible()
    assert mic.accessibleName() == "Stop recording"
    assert bar.countdown.text().endswith("30 s left")
    pulse_server.play_wav(speech)
    levels: list[float] = []
    window.media.recorder.sig_level.connect(levels.append)
    qtbot.waitUntil(lambda: max(levels, default=0.0) > 0.3, timeout=10_000)
    assert bar.meter.level >= 0.0
    qtbot.waitUntil(lambda: "0:01" in bar.countdown.text(), timeout=5000)
    assert "28 s left" in bar.countdown.text() or "29 s left" in bar.countdown.text()
    _wait_played(qtbot, pulse_server)
    qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    assert voice.state == IDLE and not bar.isVisible()
    chip = _chips(window)[0]
    assert isinstance(chip, AudioChip) and chip.name == "Voice message"
    clip = window.media.attachments()[0]
    info = sf.info(str(clip.path))
    assert info.samplerate == 16_000 and info.channels == 1 and info.duration > 1.0

    qtbot.mouseClick(chip.play_button, Qt.MouseButton.LeftButton)  # plays through the null sink
    qtbot.waitUntil(lambda: chip.playing, timeout=5000)
    qtbot.mouseClick(chip.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chip.playing, timeout=5000)

    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    part = client.generate_calls[0][0][-1]["content"][0]
    assert part == {"type": "audio", "path": str(clip.path)}
    client.finish()
    bubble = window.chat_view.messages[0]
    assert isinstance(bubble.attachments_view.chips[0], AudioChip)


def test_hold_is_push_to_talk(qtbot, env, speech) -> None:
    window, _client, pulse_server = env
    mic, voice, bar = window.composer.mic_button, window.media.voice, window.media.recording_bar
    qtbot.mousePress(mic, Qt.MouseButton.LeftButton)
    pulse_server.play_wav(speech)
    qtbot.waitUntil(lambda: voice.state == PUSH_TO_TALK, timeout=3000)
    assert "release to stop" in bar.state_label.text()
    _wait_played(qtbot, pulse_server)
    qtbot.mouseRelease(mic, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    assert voice.state == IDLE
    assert sf.info(str(window.media.attachments()[0].path)).duration > 1.0


def test_shortcut_toggles_and_escape_cancels(qtbot, env, speech) -> None:
    window, _client, pulse_server = env
    voice = window.media.voice
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert voice.state == RECORDING
    assert window.composer.input.toPlainText() == ""
    pulse_server.play_wav(speech)
    qtbot.wait(400)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Escape)
    assert voice.state == IDLE and not window.media.recording_bar.isVisible()
    qtbot.wait(300)
    assert _chips(window) == []  # thrown away

    pulse_server.feeder.clear()
    pulse_server.play_wav(speech)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    _wait_played(qtbot, pulse_server)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)


def test_silence_says_no_sound_was_recorded(qtbot, env) -> None:
    window, _client, _pulse = env
    mic = window.composer.mic_button
    qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
    qtbot.wait(1200)  # the FIFO feeder writes digital silence when nothing is queued
    qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert window.banner.text_label.text().startswith(NO_SOUND_MESSAGE)
    assert _chips(window) == [] and window.media.voice.state == IDLE


def test_model_without_audio_and_no_e_model_says_what_to_download(
        qtbot, env, local_hub: LocalHub, monkeypatch) -> None:  # noqa: F811
    window, client, _pulse = env
    client.loaded({**MODEL_INFO, "name": "gemma-4-31B-it-Q4_K_M", "supports_audio": False})
    mic = window.composer.mic_button
    assert "E2B" in mic.toolTip()
    qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
    assert window.media.voice.state == IDLE
    assert window.banner.isVisible() and window.banner.action_key == "get_audio_model"
    # "Get it" downloads the smallest E2B (model + projector) from the Hub: a local one here.
    ctx = window.models_context()
    entry = min((e for e in ctx.catalog.entries() if e.variant.id == "E2B" and e.mmproj),
                key=lambda e: e.file.size)
    files = synthetic_gemma4()
    local_hub.add_repo(entry.repo.repo_id, {entry.file.filename: files["model"],
                                            entry.mmproj.filename: files["mmproj"]})
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    with qtbot.waitSignal(window.media.sig_get_audio_model_requested, timeout=1000):
        qtbot.mouseClick(window.banner.action_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ctx.installed_paths(entry) is not None
                    and ctx.installed_paths(entry)[1] is not None, timeout=60_000)
    # The transcriber now finds a model to listen with.
    assert find_transcription_model(ctx.store.installed(), ctx.catalog) is not None
    # Let the model manager's background refresh (opened to show the progress) end.
    qtbot.waitUntil(lambda: not any(t.name in ("catalog-refresh", f"download-{entry.file.filename}")
                                    for t in threading.enumerate()), timeout=60_000)


def _wait_played(qtbot, server) -> None:
    # Keep the event loop running: the recorder reads the microphone on the GUI thread, and a
    # blocked loop would let the audio device's small buffer overflow.
    qtbot.waitUntil(lambda: server.feeder.queued_seconds() == 0, timeout=15_000)
    qtbot.wait(150)
