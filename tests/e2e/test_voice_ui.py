"""The window end to end with images and voice: the real engine host, the synthetic Gemma 4 with its
projector (images and audio really go through libmtmd), a real PulseAudio microphone fed with
espeak-ng speech, real storage. Also local transcription by a second host for a model without
audio input.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.core.chat.session import ChatSession
from app.core.download.store import ModelStore
from app.core.storage.history import HistoryStore
from app.services.engine_client import EngineClient
from app.ui.attachments import AudioChip, ImageChip
from app.ui.main_window import MainWindow
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401 - the fixture
from tests.qt.screenshots import make_settings

pytestmark = pytest.mark.slow
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture(scope="module")
def gemma4() -> dict[str, Path]:
    return synthetic_gemma4()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "What colour is the bicycle?"], check=True,
                   timeout=30, capture_output=True)
    return path


def _window(qtbot, tmp_path: Path):
    store = HistoryStore(tmp_path / "history.db")
    client = EngineClient()
    settings = make_settings(enable_thinking=False, temperature=0.0, max_tokens=6, n_ctx=4096)
    window = MainWindow(settings, store, ChatSession(store), client)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    return window, client, store


def _close(qtbot, window: MainWindow, client: EngineClient, store: HistoryStore) -> None:
    window.media.shutdown()
    qtbot.waitUntil(lambda: not window.media.recorder.is_busy, timeout=5000)
    window.close()
    client.shutdown()
    store.close()


def _drop_files(window: MainWindow, *files: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    target = window.composer.input.viewport()
    pos = target.rect().center()
    QApplication.sendEvent(target, QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime,
                                                   Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(target, QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def _bicycle(path: Path) -> Path:
    img = np.full((300, 400, 3), 235, dtype=np.uint8)
    img[180:200, 60:340] = (200, 30, 30)
    img[120:260, 40:60] = img[120:260, 320:340] = (40, 40, 40)
    Image.fromarray(img).save(path)
    return path


def _grab(window: MainWindow, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    QApplication.processEvents()
    window.grab().save(str(SHOTS / f"media-{name}.png"))


def test_image_and_recorded_clip_reach_the_model_and_are_stored_and_shown(
        qtbot, tmp_path, gemma4, speech, pulse: PulseServer) -> None:  # noqa: F811
    window, client, store = _window(qtbot, tmp_path)
    try:
        with qtbot.waitSignal(client.sig_loaded, timeout=120_000) as loaded:
            window.load_model(str(gemma4["model"]), str(gemma4["mmproj"]))
        assert loaded.args[0]["supports_vision"] and loaded.args[0]["supports_audio"]

        _drop_files(window, _bicycle(tmp_path / "bicycle.png"))
        qtbot.waitUntil(lambda: len(window.media.strip.chips()) == 1, timeout=10_000)

        mic, bar = window.composer.mic_button, window.media.recording_bar
        qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
        pulse.play_wav(speech)
        qtbot.waitUntil(lambda: bar.meter.level > 0.2, timeout=10_000)
        _grab(window, "recording")
        _wait_played(qtbot, pulse)
        qtbot.mouseClick(mic, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(window.media.strip.chips()) == 2, timeout=10_000)
        clip = window.media.attachments()[1]
        assert sf.info(str(clip.path)).duration > 1.0  # the whole question was recorded
        window.composer.input.setPlainText("Answer the question in the recording.")
        _grab(window, "attached")

        with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=180_000) as done:
            qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
        stats = done.args[0]
        # The image (>= 70 tokens) and ~1.5 s of speech (>= 38 tokens) were in the prompt.
        assert stats["prompt_tokens"] >= 70 + 38 + 10, stats
        assert stats["completion_tokens"] > 0
        answer = window.chat_view.last_assistant()
        assert answer.status == "complete"

        conversation = store.list_conversations()[0]
        user = store.thread(conversation.id)[0]
        assert [a.kind for a in user.attachments] == ["image", "audio"]
        assert all(Path(a.path).is_file() for a in user.attachments)
        chips = window.chat_view.messages[0].attachments_view.chips
        assert isinstance(chips[0], ImageChip) and isinstance(chips[1], AudioChip)
        _grab(window, "transcript")

        # Reopened from disk, the thumbnails are still there.
        window.controller.new_conversation()
        window.controller.open_conversation(conversation.id)
        chips = window.chat_view.messages[0].attachments_view.chips
        assert [type(c) for c in chips] == [ImageChip, AudioChip]
    finally:
        pulse.feeder.clear()
        _close(qtbot, window, client, store)


def test_model_without_audio_transcribes_with_an_installed_e2b(qtbot, tmp_path, gemma4, speech) -> None:
    # The synthetic model stands in for an installed E2B + projector (named as the catalog names them).
    e2b_dir = tmp_path / "e2b"
    e2b_dir.mkdir()
    model = e2b_dir / "gemma-4-E2B-it-Q8_0.gguf"
    mmproj = e2b_dir / "mmproj-gemma-4-E2B-it-bf16.gguf"
    os.link(gemma4["model"], model) if _same_fs(gemma4["model"], e2b_dir) else shutil.copy(gemma4["model"], model)
    shutil.copy(gemma4["mmproj"], mmproj)
    models = ModelStore()
    models.import_local(model, copy=False)
    models.import_local(mmproj, copy=False)

    window, client, store = _window(qtbot, tmp_path)
    try:
        with qtbot.waitSignal(client.sig_loaded, timeout=120_000) as loaded:
            window.load_model(str(gemma4["model"]))  # no projector: like 26B/31B, no audio input
        assert not loaded.args[0]["supports_audio"]
        assert "E2B" not in window.composer.mic_button.toolTip()  # not blocked: a transcriber exists

        transcriber = window.media.transcriber
        window.composer.input.setPlainText("Heard:")
        with qtbot.waitSignal(transcriber.sig_finished, timeout=240_000) as finished:
            _drop_files(window, speech)
        text = finished.args[0]
        # The clip really went through the second host's audio projector.
        assert transcriber.last_stats["prompt_tokens"] >= 38, transcriber.last_stats
        assert transcriber._client is not None and transcriber._client.host_pid != client.host_pid
        if text:
            assert window.composer.text() == f"Heard: {text}"
        else:
            assert "Nothing could be made out" in window.status.message_label.text()
        assert window.media.attachments() == []  # the text goes in, not the clip
    finally:
        window.media.transcriber.shutdown()
        _close(qtbot, window, client, store)


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _wait_played(qtbot, server) -> None:
    # Keep the event loop running: the recorder reads the microphone on the GUI thread, and a
    # blocked loop would let the audio device's small buffer overflow.
    qtbot.waitUntil(lambda: server.feeder.queued_seconds() == 0, timeout=15_000)
    qtbot.wait(150)
