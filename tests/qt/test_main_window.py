"""The window end to end with real storage: send, stream, stop, crash + restart, sidebar actions.

The engine is FakeEngineClient (same signals as EngineClient): these tests are about what the
window does with the engine's signals; the real engine is exercised in tests/e2e.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QLineEdit

from app.ui.main_window import MainWindow
from tests.qt.screenshots import MODEL_INFO, make_settings


@pytest.fixture
def env(window_env):
    e = window_env(make_settings(enable_thinking=True, system_prompt="Be brief."))
    return e.window, e.client, e.store, e.settings


def _send(qtbot, window: MainWindow, text: str) -> None:
    window.composer.input.setFocus()
    qtbot.keyClicks(window.composer.input, text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def test_send_streams_thinking_then_answer_and_stores_it(qtbot, env) -> None:
    window, client, store, _settings = env
    client.loaded()
    assert window.composer.model_chip.text() == MODEL_INFO["name"]
    assert window.status.model_label.text() == MODEL_INFO["name"]

    _send(qtbot, window, "Why is the sky blue?")
    assert len(client.generate_calls) == 1
    messages, thinking, params = client.generate_calls[0]
    assert messages == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Why is the sky blue?"}]
    assert thinking is True and params["temperature"] == 1.0 and params["top_k"] == 64
    assert window.composer.generating

    conversation = store.list_conversations()[0]
    assert window.windowTitle() == f"Gemma Desktop — {conversation.title}"
    assert window.sidebar.titles() == [conversation.title]
    # The user's message is on disk before the answer arrives.
    user, placeholder = store.thread(conversation.id)
    assert user.content == "Why is the sky blue?" and placeholder.status == "streaming"

    client.delta("thinking", "Rayleigh scattering ")
    client.delta("thinking", "favours short wavelengths.")
    message = window.chat_view.last_assistant()
    assert message.thinking.expanded
    client.delta("answer", "Because of **Rayleigh** scattering.")
    client.finish()
    assert not window.composer.generating
    assert not message.thinking.expanded
    stored = store.get_message(placeholder.id)
    assert stored.status == "complete"
    assert stored.content == "Because of **Rayleigh** scattering."
    assert stored.thinking == "Rayleigh scattering favours short wavelengths."
    assert stored.thinking_seconds is not None
    assert stored.stats["decode_tok_s"] == pytest.approx(41.7)
    assert "thinking" not in stored.stats and "answer" not in stored.stats
    assert window.status.speed_label.text() == "41.7 tok/s"
    assert window.status.ttft_label.text() == "First token 182 ms"
    assert window.status.context_label.text() == "Context 1,330 / 8,192"
    assert not message.regenerate_button.isHidden()

    # A follow-up sends the earlier answer without its thinking.
    _send(qtbot, window, "Shorter?")
    messages, _, _ = client.generate_calls[1]
    assert messages[1:] == [{"role": "user", "content": "Why is the sky blue?"},
                            {"role": "assistant", "content": "Because of **Rayleigh** scattering."},
                            {"role": "user", "content": "Shorter?"}]


def test_stop_keeps_the_partial_answer_as_stopped(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    _send(qtbot, window, "Count to a hundred")
    client.delta("answer", "1, 2, 3,")
    qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)  # now "Stop"
    assert client.stop_calls == 1
    qtbot.waitUntil(lambda: not window.composer.generating, timeout=2000)
    message = window.chat_view.last_assistant()
    assert message.status == "stopped" and message.status_tag.text() == "Stopped"
    conversation = store.list_conversations()[0]
    stored = store.thread(conversation.id)[-1]
    assert stored.status == "stopped" and stored.content == "1, 2, 3,"


def test_escape_stops_from_anywhere_in_the_window(qtbot, env) -> None:
    window, client, _store, _ = env
    client.loaded()
    _send(qtbot, window, "Tell me a long story")
    window.sidebar.list.setFocus()
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Escape)
    assert client.stop_calls >= 1
    qtbot.waitUntil(lambda: not window.composer.generating, timeout=2000)


def test_engine_crash_shows_banner_keeps_conversation_and_restart_is_wired(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    _send(qtbot, window, "Explain quicksort")
    client.delta("answer", "Quicksort picks a pivot")
    client.crash()
    assert not window.banner.isHidden()
    assert window.banner.title_label.text() == "The engine stopped unexpectedly"
    assert "SIGKILL" in window.banner.text_label.text()
    assert "ggml: fatal error" in window.banner.details  # the log tail is kept for details
    assert not window.composer.generating
    # The conversation stays, on screen and on disk, with the partial answer interrupted.
    message = window.chat_view.last_assistant()
    assert message.markdown == "Quicksort picks a pivot" and message.status == "interrupted"
    conversation = store.list_conversations()[0]
    assert [m.status for m in store.thread(conversation.id)] == ["complete", "interrupted"]

    qtbot.mouseClick(window.banner.action_button, Qt.MouseButton.LeftButton)
    assert client.restart_calls == 1
    assert window.banner.isHidden()
    client.loaded()
    assert window.composer.model_chip.text() == MODEL_INFO["name"]


def test_sending_without_a_model_explains_and_keeps_the_text(qtbot, env) -> None:
    window, client, store, _ = env
    _send(qtbot, window, "Hello?")
    assert client.generate_calls == []
    assert window.banner.title_label.text() == "No model loaded"
    assert window.banner.action_button.text() == "Open model…"
    assert window.composer.text() == "Hello?"
    assert store.list_conversations() == []


def test_load_failure_and_generation_failure_are_shown(qtbot, env) -> None:
    window, client, store, _ = env
    window.load_model("/models/broken.gguf")
    assert client.loads[0][0] == "/models/broken.gguf"
    assert window.status.model_label.text() == "Loading broken.gguf…"
    client.sig_load_failed.emit("This file is not a GGUF model. Choose a .gguf file.")
    assert window.banner.title_label.text() == "Couldn't open this model"
    assert "not a GGUF" in window.banner.text_label.text()
    client.loaded()
    assert window.banner.isHidden()
    _send(qtbot, window, "x " * 20)
    client._busy = False
    client.fail("The prompt is longer than the context (9,000 > 8,192 tokens).")
    message = window.chat_view.last_assistant()
    assert message.status == "error" and "longer than the context" in message.error_label.text()
    conversation = store.list_conversations()[0]
    assert store.thread(conversation.id)[-1].status == "error"


def test_regenerate_writes_a_new_answer_and_keeps_the_old_as_a_branch(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    _send(qtbot, window, "A haiku about rain")
    client.delta("answer", "First try")
    client.finish()
    first = window.chat_view.last_assistant()
    qtbot.mouseClick(first.regenerate_button, Qt.MouseButton.LeftButton)
    assert len(client.generate_calls) == 2
    assert client.generate_calls[1][0][-1] == {"role": "user", "content": "A haiku about rain"}
    client.delta("answer", "Second try")
    client.finish()
    new = window.chat_view.last_assistant()
    assert new is not first and new.markdown == "Second try"
    assert len(window.chat_view.messages) == 2
    assert [s.content for s in store.siblings(new.message_id)] == ["First try", "Second try"]


def test_sidebar_new_open_rename_delete_with_the_real_store(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    for text in ("Plan a trip", "Fix my regex"):
        window.controller.new_conversation()
        _send(qtbot, window, text)
        client.delta("answer", f"Answer to {text}")
        client.finish()
    assert window.sidebar.titles() == ["Fix my regex", "Plan a trip"]  # newest first

    # New chat: empty state, nothing stored until the first message.
    qtbot.mouseClick(window.sidebar.new_button, Qt.MouseButton.LeftButton)
    assert window.chat_view.is_empty() and window.windowTitle() == "Gemma Desktop — New chat"
    assert len(store.list_conversations()) == 2

    # Open the older one from the list.
    window.sidebar.list.setCurrentRow(1)
    assert [w.text for w in window.chat_view.messages[:1]] == ["Plan a trip"]
    assert window.chat_view.messages[1].markdown == "Answer to Plan a trip"
    assert window.windowTitle() == "Gemma Desktop — Plan a trip"

    # F2 renames in place.
    window.sidebar.list.setFocus()
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_F2)
    editor = window.sidebar.list.findChild(QLineEdit)
    assert editor is not None
    editor.selectAll()
    qtbot.keyClicks(editor, "Lisbon in May")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Lisbon in May" in [c.title for c in store.list_conversations()],
                    timeout=2000)
    assert "Lisbon in May" in window.sidebar.titles()
    assert window.windowTitle() == "Gemma Desktop — Lisbon in May"

    # Delete asks first; answering Cancel keeps it.
    window.sidebar.confirm_delete = lambda title: False  # the dialog's answer
    window.sidebar.list.setFocus()
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Delete)
    assert len(store.list_conversations()) == 2
    window.sidebar.confirm_delete = lambda title: title == "Lisbon in May"
    qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Delete)
    assert [c.title for c in store.list_conversations()] == ["Fix my regex"]
    assert window.sidebar.titles() == ["Fix my regex"]
    assert window.chat_view.is_empty()  # the open conversation was the deleted one


def test_search_filters_the_list(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    for text in ("Tell me about penguins", "Sourdough starter tips"):
        window.controller.new_conversation()
        _send(qtbot, window, text)
        client.delta("answer", "ok")
        client.finish()
    qtbot.keyClicks(window.sidebar.search_box, "penguins")
    qtbot.waitUntil(lambda: window.sidebar.titles() == ["Tell me about penguins"], timeout=3000)
    assert window.sidebar.section_label.text() == "Results"
    window.sidebar.search_box.clear()
    qtbot.waitUntil(lambda: len(window.sidebar.titles()) == 2, timeout=3000)


def test_theme_and_text_scale_switch(qtbot, env) -> None:
    window, _client, _store, settings = env
    window.set_theme("dark")
    assert window.theme_manager.scheme == "dark" and settings.theme == "dark"
    assert "#1d1e21" in QApplication.instance().styleSheet()
    window.set_theme("light")
    assert window.theme_manager.scheme == "light"
    window._step_text_scale(+1)
    assert settings.text_scale == pytest.approx(1.1)
    window.set_text_scale(1.0)


def test_switching_away_while_streaming_and_back_shows_the_live_answer(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    _send(qtbot, window, "Old chat")
    client.delta("answer", "old answer")
    client.finish()
    window.controller.new_conversation()
    _send(qtbot, window, "Streaming chat")
    client.delta("thinking", "pondering ")
    client.delta("answer", "part one, ")
    streaming_id = window.controller.conversation_id
    old_id = [c.id for c in store.list_conversations() if c.id != streaming_id][0]

    window.controller.open_conversation(old_id)
    assert window.chat_view.last_assistant().markdown == "old answer"
    client.delta("answer", "part two")  # arrives while another chat is on screen
    assert window.chat_view.last_assistant().markdown == "old answer"

    window.controller.open_conversation(streaming_id)
    live = window.chat_view.last_assistant()
    live.flush()
    assert live.markdown == "part one, part two"
    assert len(window.chat_view.messages) == 2  # the stored placeholder is not shown twice
    client.finish()
    stored = store.thread(streaming_id)[-1]
    assert stored.content == "part one, part two" and stored.status == "complete"
    assert live.status == "complete"


def test_delete_confirmation_dialog(qtbot, env) -> None:
    window, client, store, _ = env
    client.loaded()
    _send(qtbot, window, "Delete me")
    client.finish()
    answers: list[str] = []

    def answer(button_text: str) -> None:
        from PySide6.QtWidgets import QMessageBox

        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        answers.append(box.text())
        for button in box.buttons():
            if button.text() == button_text:
                button.click()

    QTimer.singleShot(50, lambda: answer("Cancel"))
    window.sidebar.request_delete(store.list_conversations()[0].id)
    assert len(store.list_conversations()) == 1
    QTimer.singleShot(50, lambda: answer("Delete"))
    window.sidebar.request_delete(store.list_conversations()[0].id)
    assert store.list_conversations() == []
    assert answers and "Delete me" in answers[0]


def test_build_main_window_wires_settings_and_history(qtbot) -> None:
    from app.core.storage.settings import default_path, load_settings
    from app.ui.app_window import build_main_window

    window = build_main_window(QApplication.instance())
    qtbot.addWidget(window)
    try:
        assert window.windowTitle() == "Gemma Desktop — New chat"
        start = window.composer.thinking_enabled()
        qtbot.mouseClick(window.composer.thinking_toggle, Qt.MouseButton.LeftButton)
        assert default_path().exists()  # saved at once, atomically
        assert load_settings()[0].enable_thinking is (not start)
        window.set_theme("dark")
        assert load_settings()[0].theme == "dark"
        window.set_theme("system")
    finally:
        window.controller._client.shutdown()
        window.controller._store.close()


def test_deleting_a_streaming_chat_waits_for_the_engine_to_confirm_the_stop(qtbot, env) -> None:
    window, client, store, _settings = env
    client.loaded()
    _send(qtbot, window, "Tell me a story")
    client.delta("answer", "Once")
    conversation = window.controller.conversation_id
    confirmed = client.stop
    client.stop = lambda req_id=None: None  # the engine has not confirmed the stop yet
    window.controller.delete_conversation(conversation)
    assert store.list_conversations() == []
    assert window.controller.busy  # the answer is still being ended by the engine
    assert not window.controller.send("Next question")  # so the next one cannot start yet
    assert len(client.generate_calls) == 1
    client.delta("answer", " upon a time")  # late text of the deleted answer goes nowhere
    client.stop = confirmed
    client.finish(stopped=True)
    assert not window.controller.busy
    assert window.controller.send("Next question")
    assert len(client.generate_calls) == 2
    assert [m.content for m in store.thread(window.controller.conversation_id)] == ["Next question", ""]
