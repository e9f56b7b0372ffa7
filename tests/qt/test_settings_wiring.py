"""The settings dialog in the window: Ctrl+, opens it; applied values take effect at once (theme,
text size, thinking, send key, sampling values and system prompt of the next message) and are
saved; Cancel changes nothing; a model change goes through the ModelSwitcher with progress in the
status bar, asks first while an answer is written, and a failed switch brings the previous back.

The engine is FakeEngineClient (the window's reaction to its signals is under test); the real
engine switching in the window is tests/e2e/test_switching_window.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.chat.session import ChatSession
from app.core.hardware.planner import Machine
from app.core.storage.history import HistoryStore
from app.core.storage.settings import Settings, default_path
from app.ui.main_window import MainWindow
from tests.fixtures.pulse import pulse  # noqa: F401 - the fixture
from tests.fixtures.window import NoModels
from tests.qt.screenshots import MODEL_INFO, FakeEngineClient

# Qt Multimedia finds PulseAudio only if it runs before the Voice page first asks for devices.
pytestmark = pytest.mark.usefixtures("pulse")


@pytest.fixture
def env(window_env):
    settings = Settings(system_prompt="Be brief.", theme="light")
    e = window_env(settings, loaded=True, no_models=True,
                   machine=Machine.hypothetical(vram_gib=0, ram_gib=16))
    # The theme manager is one per application: undo what an earlier test applied.
    e.window.theme_manager.apply(theme=settings.theme, text_scale=settings.text_scale)
    return e.window, e.client, settings


def _open(qtbot, window: MainWindow):
    # Window shortcuts need the window active (the offscreen platform may not activate it).
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window.settings_wiring.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def _apply(qtbot, window: MainWindow, dialog) -> None:
    with qtbot.waitSignal(window.settings_wiring.sig_applied, timeout=10_000):
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)


def _send(qtbot, window: MainWindow, text: str, ctrl: bool = False) -> None:
    window.composer.input.setFocus()
    qtbot.keyClicks(window.composer.input, text)
    modifier = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return, modifier)


def test_applied_settings_take_effect_now_and_are_saved(qtbot, env) -> None:
    window, client, settings = env
    dialog = _open(qtbot, window)
    assert dialog.isVisible() and dialog.windowTitle() == "Settings"
    gen = dialog.generation_page
    gen.system_prompt.setPlainText("Answer like a pirate.")
    gen.temperature.setValue(0.4)
    gen.top_k.setValue(20)
    gen.max_tokens.setValue(321)
    dialog.model_page.thinking.setChecked(False)
    look = dialog.appearance_page
    look.theme_buttons["dark"].setChecked(True)
    look.text_size.setCurrentIndex(look.text_size.findData(1.2))
    look.ctrl_enter.setChecked(True)
    _apply(qtbot, window, dialog)

    # Live, without a restart: the window's own Settings object, the theme and the composer.
    assert (settings.temperature, settings.top_k, settings.max_tokens) == (0.4, 20, 321)
    assert window.theme_manager.theme == "dark" and window.theme_manager.text_scale == 1.2
    assert window.theme_actions["dark"].isChecked()
    assert not window.composer.thinking_enabled()
    saved = json.loads(default_path().read_text("utf-8"))
    assert saved["theme"] == "dark" and saved["temperature"] == 0.4
    assert saved["system_prompt"] == "Answer like a pirate." and saved["send_with_ctrl_enter"]

    dialog.close()
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=3000)
    _send(qtbot, window, "Ahoy")  # Enter alone no longer sends
    assert client.generate_calls == []
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    messages, thinking, params = client.generate_calls[-1]
    assert messages[0] == {"role": "system", "content": "Answer like a pirate."}
    assert thinking is False
    assert (params["temperature"], params["top_k"], params["max_tokens"]) == (0.4, 20, 321)


def test_cancel_changes_nothing(qtbot, env) -> None:
    window, _client, settings = env
    dialog = _open(qtbot, window)
    dialog.generation_page.temperature.setValue(1.7)
    dialog.appearance_page.theme_buttons["dark"].setChecked(True)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=3000)
    assert settings.temperature == 1.0 and window.theme_manager.theme == "light"
    assert not default_path().exists()
    # Opening again shows the values in use, not the cancelled edits.
    dialog = _open(qtbot, window)
    assert dialog.generation_page.temperature.value() == 1.0
    dialog.reject()


def _switch_to(qtbot, window: MainWindow, dialog, path: Path) -> None:
    dialog.model_page.add_model(str(path))
    qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)


def test_model_change_switches_live_and_a_failure_brings_the_previous_back(
        qtbot, env, model_270m, tmp_path: Path) -> None:
    window, client, settings = env
    dialog = _open(qtbot, window)
    _switch_to(qtbot, window, dialog, model_270m)
    assert client.loads[-1][0] == str(model_270m)  # a fresh host for the new model
    assert window.status.progress.isVisible()
    assert window.composer.model_chip.text() == f"Loading {model_270m.name}…"
    client.sig_load_progress.emit(0.5)
    assert window.status.progress.value() == 500
    info_270m = {**MODEL_INFO, "name": "gemma3-270m", "path": str(model_270m), "n_ctx": 8192}
    client.loaded(info_270m)
    assert window.composer.model_chip.text() == "gemma3-270m"
    assert not window.status.progress.isVisible()
    assert settings.model_path == str(model_270m)

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    _switch_to(qtbot, window, dialog, broken)
    assert client.loads[-1][0] == str(broken)
    client.sig_load_failed.emit("This file is not a model llama.cpp can load.")
    assert client.loads[-1][0] == str(model_270m)  # the previous model is loading again
    with qtbot.waitSignal(window.settings_wiring.sig_applied, timeout=5000):
        client.loaded(info_270m)
    assert not window.banner.isHidden()
    assert window.banner.title_label.text() == "Couldn't switch models"
    text = window.banner.text_label.text()
    assert "broken.gguf could not be loaded" in text and "gemma3-270m" in window.status.model_label.text()
    assert "is loaded again" in text
    assert settings.model_path == str(model_270m)
    assert json.loads(default_path().read_text("utf-8"))["model_path"] == str(model_270m)
    dialog.reject()


def test_switching_while_an_answer_is_written_asks_first(qtbot, env, model_270m) -> None:
    window, client, settings = env
    _send(qtbot, window, "Write a long story")
    assert client.busy
    dialog = _open(qtbot, window)
    asked: list[str] = []
    dialog.ask = lambda title, _text: asked.append(title) or False  # the user says no
    loads = len(client.loads)
    _switch_to(qtbot, window, dialog, model_270m)
    assert asked == ["Stop the answer being written?"]
    assert len(client.loads) == loads and client.stop_calls == 0
    assert settings.model_path is None  # nothing changed: the running model stays

    assert dialog.model_page.selected_path() != str(model_270m)  # the choice was put back
    dialog.ask = lambda _title, _text: True  # now yes: the answer is stopped, then the switch
    _switch_to(qtbot, window, dialog, model_270m)
    assert client.stop_calls == 1
    qtbot.waitUntil(lambda: not window.composer.generating, timeout=3000)
    qtbot.waitUntil(lambda: len(client.loads) == loads + 1, timeout=5000)
    assert client.loads[-1][0] == str(model_270m)
    assert window.chat_view.last_assistant().status == "stopped"
    dialog.reject()


def test_a_failed_switch_after_the_dialog_closed_still_puts_the_settings_back(
        qtbot, env, model_270m, tmp_path: Path) -> None:
    window, client, settings = env
    saves: list[str | None] = []
    window.sig_settings_changed.connect(lambda: saves.append(settings.model_path))
    client.loaded({**MODEL_INFO, "path": str(model_270m)})
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    dialog = _open(qtbot, window)
    dialog.model_page.add_model(str(broken))
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)  # applies and closes
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=3000)
    assert settings.model_path == str(broken)
    client.sig_load_failed.emit("This file is not a model llama.cpp can load.")
    client.loaded({**MODEL_INFO, "path": str(model_270m)})
    assert settings.model_path == str(model_270m) and saves[-1] == str(model_270m)
    assert window.banner.title_label.text() == "Couldn't switch models"


def test_open_model_while_one_runs_goes_through_the_switcher(qtbot, env, model_270m) -> None:
    window, client, settings = env
    client.loaded({**MODEL_INFO, "path": str(model_270m)})
    window.load_model("/models/other.gguf")  # File → Open model…, or "Use" in the model manager
    assert client.loads[-1][0] == "/models/other.gguf" and window.settings_wiring.switcher.switching
    client.sig_load_failed.emit("This file is not a GGUF model. Choose a .gguf file.")
    assert client.loads[-1][0] == str(model_270m)  # the running model comes back
    client.loaded({**MODEL_INFO, "path": str(model_270m)})
    assert window.banner.title_label.text() == "Couldn't switch models"
    assert settings.model_path == str(model_270m)


def test_moving_the_data_folder_takes_the_history_along_and_keeps_chatting(
        qtbot, tmp_path: Path, monkeypatch) -> None:
    from app.core import paths
    from app.core.storage.history import default_db_path

    monkeypatch.delenv("GEMMA_DESKTOP_DATA_DIR", raising=False)  # restored after the test
    store = HistoryStore(default_db_path())
    client = FakeEngineClient()
    window = MainWindow(Settings(), store, ChatSession(store), client)
    window.settings_wiring.machine = Machine.hypothetical(vram_gib=0, ram_gib=16)
    window.settings_wiring._model_store = NoModels()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    client.loaded()
    try:
        _send(qtbot, window, "Remember this")
        client.delta("answer", "Noted")
        client.finish()
        conversation_id = window.controller.conversation_id
        old = paths.data_dir()
        dialog = _open(qtbot, window)
        target = tmp_path / "moved" / "data"
        dialog.storage_page.data_dir.setText(str(target))
        with qtbot.waitSignal(dialog.sig_folder_moved, timeout=30_000):
            dialog.apply()
        assert store.db_path == target / "history.db" and not (old / "history.db").exists()
        assert paths.data_dir() == target  # new attachments are stored there too
        assert window.controller.conversation_id == conversation_id
        assert [m.content for m in store.thread(conversation_id)] == ["Remember this", "Noted"]
        _send(qtbot, window, "Still here?")
        client.delta("answer", "Yes")
        client.finish()
        assert len(store.thread(conversation_id)) == 4
        dialog.reject()
    finally:
        window.close()
        store.close()


def test_moving_the_models_folder_keeps_the_active_model_found(qtbot, env, tmp_path: Path) -> None:
    from app.core import paths

    window, _client, settings = env
    old_root = paths.models_dir()
    model = old_root / "gemma-4-E2B-it-GGUF" / "model.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + b"\0" * 1024)
    settings.model_path = str(model)
    settings.mmproj_path = "/elsewhere/mmproj.gguf"  # opened from outside the folder: not moved
    dialog = _open(qtbot, window)
    target = tmp_path / "big-disk" / "models"
    dialog.storage_page.models_dir.setText(str(target))
    with qtbot.waitSignals([dialog.sig_folder_moved, window.sig_settings_changed], timeout=30_000):
        dialog.apply()
    moved = target / "gemma-4-E2B-it-GGUF" / "model.gguf"
    assert moved.exists() and not model.exists()
    assert settings.model_path == str(moved)
    assert settings.mmproj_path == "/elsewhere/mmproj.gguf"
    dialog.reject()
