"""Live model switching in the window with the real engine, driven like a user: Ctrl+, → pick a
model → OK, then type a message and get a real answer. Back and forth between the real Gemma 3
270M and the synthetic Gemma 4 several times; every switch ends the old host and ends in a
working chat. A broken GGUF brings the previous model back with a notice, and chatting goes on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.chat.session import ChatSession
from app.core.hardware.planner import Machine
from app.core.storage.history import HistoryStore
from app.core.storage.settings import Settings, load_settings, save_settings
from app.services.engine_client import EngineClient
from app.ui.main_window import MainWindow
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.pulse import pulse  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("pulse")  # the settings dialog's Voice page lists mics
LOAD_MS = 120_000
ROUNDS = 3


class _NoModels:
    def installed(self) -> list:
        return []


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture()
def env(qtbot, tmp_path: Path):
    store = HistoryStore(tmp_path / "history.db")
    client = EngineClient()
    settings = Settings(n_ctx=1024, max_tokens=6, enable_thinking=False, temperature=0.0)
    window = MainWindow(settings, store, ChatSession(store), client)
    window.settings_wiring.machine = Machine.hypothetical(vram_gib=0, ram_gib=16)
    window.settings_wiring._model_store = _NoModels()
    window.sig_settings_changed.connect(lambda: save_settings(settings))  # as app_window does
    qtbot.addWidget(window)
    window.show()
    yield window, client, store, settings
    window.close()
    client.shutdown()
    store.close()


def _chat(qtbot, window: MainWindow, store: HistoryStore, text: str) -> str:
    """Type a message, wait for the real answer; return the stored answer's model name."""
    window.composer.input.setFocus()
    qtbot.keyClicks(window.composer.input, text)
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=60_000) as done:
        qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)
    assert done.args[0]["completion_tokens"] >= 1
    answer = window.chat_view.last_assistant()
    assert answer.status == "complete", answer.error_label.text()
    stored = store.get_message(answer.message_id)
    assert stored.status == "complete" and stored.stats["completion_tokens"] >= 1
    return stored.model or ""


def _switch_in_dialog(qtbot, window: MainWindow, path: Path, expect_ok: bool = True) -> None:
    window.activateWindow()  # window shortcuts need it active (offscreen may not activate it)
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    window.composer.input.setFocus()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window.settings_wiring.dialog
    assert dialog is not None
    page = dialog.model_page
    page.add_model(str(path))
    signal = window.settings_wiring.switcher.sig_switched if expect_ok else (
        window.settings_wiring.switcher.sig_failed)
    with qtbot.waitSignal(signal, timeout=LOAD_MS):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
        assert window.status.progress.isVisible()  # loading shows in the window's status bar
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=5000)


def test_switch_back_and_forth_in_the_window_each_ending_in_a_working_chat(
        qtbot, env, model_270m) -> None:
    window, client, store, settings = env
    gemma4 = synthetic_gemma4()["model"]
    with qtbot.waitSignal(client.sig_loaded, timeout=LOAD_MS):
        window.load_model(str(model_270m))
    assert _chat(qtbot, window, store, "Hello") == client.model_info["name"]
    pids = [client.host_pid]
    for _ in range(ROUNDS):
        for path, arch in ((gemma4, "gemma4"), (model_270m, "gemma3")):
            old = client.host_pid
            _switch_in_dialog(qtbot, window, path)
            assert client.model_info["arch"] == arch and client.model_info["n_ctx"] == 1024
            assert not _alive(old) and client.host_pid not in pids
            pids.append(client.host_pid)
            assert window.composer.model_chip.text() == client.model_info["name"]
            assert settings.model_path == str(path)
            assert load_settings()[0].model_path == str(path)
            # Same conversation, new model: the answer records which model wrote it.
            assert _chat(qtbot, window, store, "And now?") == client.model_info["name"]
    assert [p for p in pids[:-1] if _alive(p)] == []
    conversation = store.list_conversations()[0]
    models = {m.model for m in store.thread(conversation.id) if m.role == "assistant"}
    assert len(models) == 2  # both models answered in the one conversation


def test_a_broken_gguf_brings_the_previous_model_back_in_the_window(
        qtbot, env, tmp_path: Path) -> None:
    window, client, store, settings = env
    gemma4 = synthetic_gemma4()["model"]
    with qtbot.waitSignal(client.sig_loaded, timeout=LOAD_MS):
        window.load_model(str(gemma4))
    _chat(qtbot, window, store, "Hi")
    broken = tmp_path / "truncated.gguf"
    data = gemma4.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    _switch_in_dialog(qtbot, window, broken, expect_ok=False)
    qtbot.waitUntil(lambda: client.model_info is not None, timeout=LOAD_MS)
    assert client.model_info["path"] == str(gemma4)
    assert not window.banner.isHidden()
    assert window.banner.title_label.text() == "Couldn't switch models"
    assert "truncated.gguf could not be loaded" in window.banner.text_label.text()
    assert settings.model_path == str(gemma4)
    assert load_settings()[0].model_path == str(gemma4)
    assert window.composer.model_chip.text() == client.model_info["name"]
    assert _chat(qtbot, window, store, "Still there?") == client.model_info["name"]
