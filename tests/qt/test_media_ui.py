"""Images in the window: drop (file URLs, raw data), paste, pick, remove, bad files, no projector.

Real storage and real media normalisation (files land in the attachments folder named by
sha256); the engine is FakeEngineClient because these tests are about what the window sends,
not about inference (tests/e2e/test_voice_ui.py sends through the real engine host).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QWidget

from app.core import paths
from app.core.chat.session import ChatSession
from app.core.media.images import max_side_for_budget
from app.core.storage.history import HistoryStore
from app.ui.attachments import AudioChip, ImageChip
from app.ui.image_viewer import ImageViewerDialog
from app.ui.main_window import MainWindow
from tests.qt.screenshots import MODEL_INFO, FakeEngineClient, make_settings


@pytest.fixture
def env(qtbot, tmp_path: Path):
    store = HistoryStore(tmp_path / "history.db")
    client = FakeEngineClient()
    settings = make_settings(enable_thinking=False, system_prompt="")
    window = MainWindow(settings, store, ChatSession(store), client)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    client.loaded()
    yield window, client, store, settings
    window.close()
    store.close()


def _photo(path: Path, size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _drop(target: QWidget, mime: QMimeData) -> QDropEvent:
    pos = target.rect().center()
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), "the drop target refused the drag"
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    return drop


def _file_mime(*files: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    return mime


def _chips(window: MainWindow) -> list[QWidget]:
    return window.media.strip.chips()


def test_drop_image_files_on_the_composer_and_send_them(qtbot, env, tmp_path) -> None:
    window, client, store, _ = env
    a, b = _photo(tmp_path / "cat.png", seed=1), _photo(tmp_path / "dog.jpg", (2400, 1800), seed=2)
    drop = _drop(window.composer.input.viewport(), _file_mime(a, b))
    assert drop.isAccepted()
    qtbot.waitUntil(lambda: len(_chips(window)) == 2 and not window.media.busy, timeout=10_000)
    assert [c.name for c in _chips(window)] == ["cat.png", "dog.jpg"]
    assert window.composer.input.toPlainText() == ""  # no file URL pasted as text
    stored = window.media.attachments()
    assert all(p.path.parent == paths.attachments_dir() for p in stored)
    assert stored[0].path.name == f"{stored[0].sha256}.png"
    with Image.open(stored[1].path) as big:  # scaled once for the vision encoder, not kept at 2400 px
        assert max(big.size) <= 1584

    window.composer.input.setPlainText("What are these?")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert len(client.generate_calls) == 1
    messages, _, _ = client.generate_calls[0]
    parts = messages[-1]["content"]
    assert [p["type"] for p in parts] == ["image", "image", "text"]
    assert parts[0]["path"] == str(stored[0].path)
    assert parts[0]["max_side"] == max_side_for_budget(280)
    assert parts[2]["text"] == "What are these?"
    assert _chips(window) == [] and not window.media.strip.isVisible()

    conversation = store.list_conversations()[0]
    user = store.thread(conversation.id)[0]
    assert [x.sha256 for x in user.attachments] == [x.sha256 for x in stored]
    bubble = window.chat_view.messages[0]
    assert [c.name for c in bubble.attachments_view.chips] == ["cat.png", "dog.jpg"]
    client.finish()


def test_drop_raw_image_data_on_the_transcript_area(qtbot, env) -> None:
    window, client, _, _ = env
    image = QImage(200, 100, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkCyan)
    mime = QMimeData()
    mime.setImageData(image)
    _drop(window.chat_view, mime)
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    chip = _chips(window)[0]
    assert isinstance(chip, ImageChip) and chip.name == "Pasted image"
    # An image alone can be sent.
    assert window.composer.send_button.isEnabled()
    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    messages, _, _ = client.generate_calls[0]
    assert [p["type"] for p in messages[-1]["content"]] == ["image"]
    client.finish()


def test_paste_image_data_and_a_copied_file(qtbot, env, tmp_path) -> None:
    window, _, _, _ = env
    clipboard = QGuiApplication.clipboard()
    image = QImage(64, 64, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.red)
    clipboard.setImage(image)
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)

    clipboard.setMimeData(_file_mime(_photo(tmp_path / "copied.png", seed=5)))
    qtbot.keyClick(window.composer.input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(_chips(window)) == 2, timeout=10_000)
    assert [c.name for c in _chips(window)] == ["Pasted image", "copied.png"]
    assert window.composer.input.toPlainText() == ""

    clipboard.setText("plain words")  # text still pastes as text
    qtbot.keyClick(window.composer.input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.composer.input.toPlainText() == "plain words"
    assert len(_chips(window)) == 2


def test_remove_a_thumbnail(qtbot, env, tmp_path) -> None:
    window, _, _, _ = env
    _drop(window.composer.input.viewport(), _file_mime(_photo(tmp_path / "one.png", seed=1),
                                                        _photo(tmp_path / "two.png", seed=2)))
    qtbot.waitUntil(lambda: len(_chips(window)) == 2, timeout=10_000)
    first = _chips(window)[0]
    assert first.remove_button is not None
    qtbot.mouseClick(first.remove_button, Qt.MouseButton.LeftButton)
    assert [c.name for c in _chips(window)] == ["two.png"]
    assert [a.name for a in window.media.attachments()] == ["two.png"]
    qtbot.mouseClick(_chips(window)[0].remove_button, Qt.MouseButton.LeftButton)
    assert window.media.attachments() == []
    assert not window.composer.send_button.isEnabled()  # nothing to send any more


@pytest.mark.parametrize("kind", ["text_as_jpg", "truncated_png", "huge"])
def test_bad_image_is_refused_by_name_and_nothing_is_lost(qtbot, env, tmp_path, kind) -> None:
    window, _, _, _ = env
    if kind == "text_as_jpg":
        bad = tmp_path / "holiday.jpg"
        bad.write_text("not really a picture")
    elif kind == "truncated_png":
        good = _photo(tmp_path / "full.png", seed=3).read_bytes()
        bad = tmp_path / "broken.png"
        bad.write_bytes(good[: len(good) // 2])
    else:
        bad = tmp_path / "poster.png"
        Image.new("1", (20_000, 20_000)).save(bad)  # a few kB on disk, 400 megapixels
    window.composer.input.setPlainText("keep me")
    _drop(window.composer.input.viewport(), _file_mime(bad))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert bad.name in window.banner.text_label.text()
    assert window.banner.title_label.text() == "Couldn\u2019t attach a file"
    assert _chips(window) == [] and not window.media.busy
    assert window.composer.input.toPlainText() == "keep me"


def test_model_without_projector_explains_and_offers_the_download(qtbot, env, tmp_path,
                                                                  monkeypatch) -> None:
    # Offline: "Get it" must say why it cannot download (tests/e2e/test_get_media_models.py
    # follows the same click through a real download from a local hub).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    window, client, _, _ = env
    client.loaded({**MODEL_INFO, "path": "/m/gemma-4-E4B-it-Q4_K_M.gguf", "supports_vision": False,
                   "supports_audio": False})
    assert "projector" in window.composer.attach_button.toolTip()
    qtbot.mouseClick(window.composer.attach_button, Qt.MouseButton.LeftButton)
    assert window.banner.isVisible()
    assert "mmproj-gemma-4-E4B-it-bf16.gguf" in window.banner.text_label.text()
    with qtbot.waitSignal(window.media.sig_get_projector_requested, timeout=1000):
        qtbot.mouseClick(window.banner.action_button, Qt.MouseButton.LeftButton)
    assert window.banner.title_label.text() == "Couldn't start the download"
    assert "offline" in window.banner.text_label.text().lower()
    # A dropped image is refused the same way, before anything is stored.
    _drop(window.composer.input.viewport(), _file_mime(_photo(tmp_path / "x.png")))
    assert window.banner.action_key == "get_projector" and _chips(window) == []


def test_transcript_thumbnail_opens_a_larger_view(qtbot, env, tmp_path) -> None:
    window, client, _, _ = env
    _drop(window.composer.input.viewport(), _file_mime(_photo(tmp_path / "view.png", (900, 600))))
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    window.composer.input.setPlainText("Look")
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    client.delta("answer", "A noisy picture.")
    client.finish()
    chip = window.chat_view.messages[0].attachments_view.chips[0]
    qtbot.mouseClick(chip.thumb, Qt.MouseButton.LeftButton)
    viewer = window.chat_view.messages[0].attachments_view.viewer
    assert isinstance(viewer, ImageViewerDialog) and viewer.isVisible()
    # Larger than the thumbnail, at most the screen; the caption gives the stored size.
    assert viewer.image_label.pixmap().width() > chip.thumb.width()
    assert viewer.caption.text().endswith("900×600")
    viewer.reject()


def test_image_detail_setting_changes_what_is_sent(qtbot, env, tmp_path) -> None:
    window, client, _, settings = env
    _drop(window.composer.input.viewport(), _file_mime(_photo(tmp_path / "d.png")))
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    combo = window.media.strip.detail
    assert combo.isVisible() and combo.currentData() == 280
    with qtbot.waitSignal(window.sig_settings_changed, timeout=1000):
        combo.setCurrentIndex(combo.findData(1120))
    assert settings.image_detail == 1120
    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    assert client.generate_calls[0][0][-1]["content"][0]["max_side"] == max_side_for_budget(1120)
    client.finish()


def test_audio_file_is_attached_as_a_clip(qtbot, env, tmp_path) -> None:
    import soundfile as sf

    window, client, _, _ = env
    wav = tmp_path / "note.wav"
    t = np.arange(44100 * 2) / 44100
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 440 * t), 44100)
    _drop(window.composer.input.viewport(), _file_mime(wav))
    qtbot.waitUntil(lambda: len(_chips(window)) == 1, timeout=10_000)
    chip = _chips(window)[0]
    assert isinstance(chip, AudioChip) and chip.label.text() == "note.wav · 0:02"
    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)
    part = client.generate_calls[0][0][-1]["content"][0]
    assert part["type"] == "audio" and part["path"].endswith(".wav")
    client.finish()
