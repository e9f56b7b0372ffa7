"""Conversation tools in the window on the real HistoryStore/ChatSession: edit & resend with the
‹ 1/2 › switcher, regenerate siblings, search jumps to the hit, export -> import round trip
(byte-identical JSON), per-conversation overrides, keyboard shortcuts and accessible names.

The engine is FakeEngineClient: these tests are about what the window does with its signals.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from app.core.storage.history import HistoryStore
from app.core.storage.records import Attachment
from app.core.storage.settings import PRESETS
from app.ui import shortcuts
from app.ui.main_window import MainWindow
from app.ui.messages import AssistantMessageWidget, UserMessageWidget
from tests.qt.screenshots import FakeEngineClient, make_settings, save


@pytest.fixture
def env(window_env):
    e = window_env(make_settings(enable_thinking=False, system_prompt="Be brief."), loaded=True)
    return e.window, e.client, e.store, e.session


def _send(qtbot, window: MainWindow, text: str) -> None:
    window.composer.input.setFocus()
    qtbot.keyClicks(window.composer.input, text)
    qtbot.keyClick(window.composer.input, Qt.Key.Key_Return)


def _answer(client: FakeEngineClient, text: str) -> None:
    client.delta("answer", text)
    client.finish()


def _shown(window: MainWindow) -> list[tuple[str, str]]:
    out = []
    for w in window.chat_view.messages:
        if isinstance(w, UserMessageWidget):
            out.append(("user", w.text))
        else:
            assert isinstance(w, AssistantMessageWidget)
            out.append(("assistant", w.markdown))
    return out


def _switcher_text(widget) -> str | None:
    s = widget.branch_switcher
    return s.label.text() if not s.isHidden() else None


def test_edit_and_resend_keeps_the_old_branch_and_the_switcher_flips(qtbot, env) -> None:
    window, client, store, _ = env
    _send(qtbot, window, "Name a colour")
    _answer(client, "Blue")
    _send(qtbot, window, "Another?")
    _answer(client, "Green")
    first_user = window.chat_view.messages[0]
    assert _switcher_text(first_user) is None  # one version only: no switcher

    qtbot.mouseClick(first_user.edit_button, Qt.MouseButton.LeftButton)
    editor = first_user.editor
    assert editor is not None and editor.input.hasFocus()
    editor.input.selectAll()
    qtbot.keyClicks(editor.input, "Name a fruit")
    qtbot.keyClick(editor.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

    # Sent from the edited message: the later turns of the old branch are not in the prompt.
    messages, _, _ = client.generate_calls[-1]
    assert messages == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Name a fruit"}]
    _answer(client, "Apple")
    assert _shown(window) == [("user", "Name a fruit"), ("assistant", "Apple")]
    user = window.chat_view.messages[0]
    assert _switcher_text(user) == "2/2"
    assert user.branch_switcher.label.accessibleName() == "Version 2 of 2"

    # ‹ brings the old branch back with everything below it, and it becomes the current one.
    qtbot.mouseClick(user.branch_switcher.previous_button, Qt.MouseButton.LeftButton)
    assert _shown(window) == [("user", "Name a colour"), ("assistant", "Blue"),
                              ("user", "Another?"), ("assistant", "Green")]
    assert _switcher_text(window.chat_view.messages[0]) == "1/2"
    conversation = store.list_conversations()[0]
    assert store.get_message(conversation.current_leaf_id).content == "Green"
    # A follow-up now continues the old branch.
    _send(qtbot, window, "And a third?")
    messages, _, _ = client.generate_calls[-1]
    assert [m["content"] for m in messages[1:]] == [
        "Name a colour", "Blue", "Another?", "Green", "And a third?"]
    _answer(client, "Red")

    qtbot.mouseClick(window.chat_view.messages[0].branch_switcher.next_button,
                     Qt.MouseButton.LeftButton)
    assert _shown(window) == [("user", "Name a fruit"), ("assistant", "Apple")]
    # Reopening the conversation shows the branch last chosen, with its switcher.
    window.controller.new_conversation()
    window.controller.open_conversation(conversation.id)
    assert _shown(window)[0] == ("user", "Name a fruit")
    assert _switcher_text(window.chat_view.messages[0]) == "2/2"


def test_escape_in_the_editor_cancels_the_edit_and_sends_nothing(qtbot, env) -> None:
    window, client, _, _ = env
    _send(qtbot, window, "Hello")
    _answer(client, "Hi")
    user = window.chat_view.messages[0]
    user.start_edit()
    qtbot.keyClicks(user.editor.input, " there")
    qtbot.keyClick(user.editor.input, Qt.Key.Key_Escape)
    assert user.editor is None and not user.bubble.isHidden()
    assert len(client.generate_calls) == 1 and client.stop_calls == 0


def test_regenerate_adds_a_sibling_answer_and_both_stay_reachable(qtbot, env) -> None:
    window, client, _, _ = env
    _send(qtbot, window, "Tell me a joke")
    _answer(client, "Joke one")
    qtbot.mouseClick(window.chat_view.last_assistant().regenerate_button, Qt.MouseButton.LeftButton)
    _answer(client, "Joke two")
    answer = window.chat_view.last_assistant()
    assert answer.markdown == "Joke two" and _switcher_text(answer) == "2/2"
    qtbot.mouseClick(answer.branch_switcher.previous_button, Qt.MouseButton.LeftButton)
    answer = window.chat_view.last_assistant()
    assert answer.markdown == "Joke one" and _switcher_text(answer) == "1/2"
    assert not answer.branch_switcher.previous_button.isEnabled()
    assert _switcher_text(window.chat_view.messages[0]) is None  # the question has one version


def test_branches_do_not_flip_while_the_answer_is_written(qtbot, env) -> None:
    window, client, _, _ = env
    _send(qtbot, window, "One")
    _answer(client, "First")
    window.controller.regenerate()
    client.delta("answer", "Sec")
    first_answer_id = window.chat_view.last_assistant().message_id
    assert not window.controller.step_branch(first_answer_id, -1)
    assert window.chat_view.last_assistant().markdown == "Sec"
    assert not window.controller.edit_and_resend(window.chat_view.messages[0].message_id, "x")


def test_search_hit_jumps_to_the_message_and_highlights_it(qtbot, env) -> None:
    window, client, store, _ = env
    window.resize(900, 600)
    _send(qtbot, window, "Where do penguins live?")
    _answer(client, "Mostly in the southern hemisphere.")
    for i in range(8):
        _send(qtbot, window, f"Filler question {i}")
        _answer(client, "A long answer. " * 60)
    target = store.thread(store.list_conversations()[0].id)[1]
    window.controller.new_conversation()

    window.sidebar.search_box.setFocus()
    qtbot.keyClicks(window.sidebar.search_box, "hemisphere")
    qtbot.waitUntil(lambda: window.sidebar.section_label.text() == "Results", timeout=3000)
    assert window.sidebar.list.count() == 1
    item = window.sidebar.list.item(0)
    assert "hemisphere" in item.text() and window.sidebar.titles() == ["Where do penguins live?"]
    window.sidebar.list.setCurrentRow(0)

    widget = window.chat_view.message_widget(target.id)
    assert widget is not None and widget.property("searchHit") is True
    bar = window.chat_view.scroll_area.verticalScrollBar()
    viewport = window.chat_view.scroll_area.viewport()

    def hit_visible() -> bool:
        top = widget.mapTo(viewport, widget.rect().topLeft()).y()
        return 0 <= top < viewport.height() and bar.value() < bar.maximum()

    qtbot.waitUntil(hit_visible, timeout=3000)  # scrolled up to it, not left at the bottom
    qtbot.waitUntil(lambda: widget.property("searchHit") is False, timeout=5000)


def test_search_hit_on_another_branch_shows_that_branch(qtbot, env) -> None:
    window, client, store, _ = env
    _send(qtbot, window, "Favourite animal?")
    _answer(client, "The axolotl, clearly")
    window.controller.regenerate()
    _answer(client, "Cats")
    window.controller.new_conversation()
    qtbot.keyClicks(window.sidebar.search_box, "axolotl")
    qtbot.waitUntil(lambda: window.sidebar.section_label.text() == "Results", timeout=3000)
    window.sidebar.list.setCurrentRow(0)
    assert window.chat_view.last_assistant().markdown == "The axolotl, clearly"
    assert _switcher_text(window.chat_view.last_assistant()) == "1/2"


def _image_attachment(store: HistoryStore, tmp_path: Path) -> Attachment:
    source = tmp_path / "red.png"
    Image.new("RGB", (16, 12), (200, 30, 30)).save(source)
    data = source.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    stored = store.attachments_dir / f"{sha}.png"
    stored.write_bytes(data)
    return Attachment("image", stored, sha, "red.png", "image/png")


def _export_via_menu(qtbot, window: MainWindow, target: Path) -> None:
    window.conversation_actions.choose_export_path = lambda _stem: str(target)
    with qtbot.waitSignal(window.conversation_actions.sig_exported, timeout=10_000):
        window.export_action.trigger()


def test_export_then_import_round_trip_is_byte_identical(qtbot, env, tmp_path: Path) -> None:
    window, client, store, session = env
    conversation = store.create_conversation()
    image = _image_attachment(store, tmp_path)
    user, answer = session.send(conversation.id, "What colour is this?", [image], model="m")
    session.finish(answer.id, "Red.", "It looks red.", "complete", {"decode_tok_s": 3.0}, 0.4)
    window.controller.refresh_conversations()
    window.controller.open_conversation(conversation.id)
    _send(qtbot, window, "Sure?")
    _answer(client, "Yes")
    window.controller.regenerate()
    _answer(client, "Quite sure")  # a branch, so the tree has more than one path
    store.set_overrides(conversation.id, system_prompt="Be exact.", preset="Precise")

    out = tmp_path / "export"
    _export_via_menu(qtbot, window, out / "first.json")
    _export_via_menu(qtbot, window, out / "first.md")
    exported = json.loads((out / "first.json").read_text("utf-8"))
    assert len(exported["messages"]) == 5
    image_file = out / f"{image.sha256}.png"
    assert image_file.read_bytes() == image.path.read_bytes()  # the image lies alongside
    markdown = (out / "first.md").read_text("utf-8")
    assert f"![red.png]({image.sha256}.png)" in markdown and "Quite sure" in markdown
    assert not [p for p in out.iterdir() if p.name.startswith(".export-")]

    # Import from another folder, with the attachment next to the JSON, as a user would.
    image.path.unlink()  # the store's own copy is gone: it must come from the export folder
    window.conversation_actions.choose_import_path = lambda: str(out / "first.json")
    with qtbot.waitSignal(window.conversation_actions.sig_imported, timeout=10_000) as imported:
        window.import_action.trigger()
    new_id = imported.args[0]
    assert new_id != conversation.id and window.controller.conversation_id == new_id
    assert _shown(window)[-1] == ("assistant", "Quite sure")
    assert len(window.sidebar.conversation_ids()) == 2

    _export_via_menu(qtbot, window, tmp_path / "again" / "second.json")
    assert (tmp_path / "again" / "second.json").read_bytes() == (out / "first.json").read_bytes()


def test_import_of_a_damaged_file_says_what_to_do(qtbot, env, tmp_path: Path) -> None:
    window, _, store, _ = env
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", "utf-8")
    window.conversation_actions.choose_import_path = lambda: str(broken)
    with qtbot.waitSignal(window.conversation_actions.sig_failed, timeout=10_000):
        window.import_action.trigger()
    assert not window.banner.isHidden()
    assert "broken.json could not be read as JSON" in window.banner.text_label.text()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}), "utf-8")
    window.conversation_actions.choose_import_path = lambda: str(other)
    with qtbot.waitSignal(window.conversation_actions.sig_failed, timeout=10_000):
        window.import_action.trigger()
    assert "not a Gemma Desktop conversation export" in window.banner.text_label.text()
    assert store.list_conversations() == []


def test_per_conversation_prompt_and_preset_override_the_settings(qtbot, env) -> None:
    window, client, store, _ = env
    _send(qtbot, window, "Hi")
    _answer(client, "Hello")
    conversation_id = window.controller.conversation_id

    def choose(dialog) -> bool:
        assert dialog.prompt.toPlainText() == "Be brief."  # starts from the settings' prompt
        dialog.own_prompt.setChecked(True)
        dialog.prompt.setPlainText("Answer in French.")
        dialog.preset.setCurrentIndex(dialog.preset.findData("Precise"))
        return True

    window.conversation_actions.edit_overrides_dialog = choose
    window.conversation_settings_action.trigger()
    stored = store.get_conversation(conversation_id)
    assert (stored.system_prompt, stored.preset) == ("Answer in French.", "Precise")
    _send(qtbot, window, "Again")
    messages, _, params = client.generate_calls[-1]
    assert messages[0] == {"role": "system", "content": "Answer in French."}
    for name, value in PRESETS["Precise"].items():
        assert params[name] == value
    _answer(client, "Bonjour")

    # Back to the settings: untick and "Same as Settings".
    def clear(dialog) -> bool:
        dialog.own_prompt.setChecked(False)
        dialog.preset.setCurrentIndex(0)
        return True

    window.conversation_actions.edit_overrides_dialog = clear
    window.conversation_settings_action.trigger()
    _send(qtbot, window, "Once more")
    messages, _, params = client.generate_calls[-1]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert params["temperature"] == 1.0


def test_keyboard_shortcuts(qtbot, env) -> None:
    window, client, _, _ = env
    window.activateWindow()  # window shortcuts need it active (offscreen may not activate it)
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    _send(qtbot, window, "Say hi")
    _answer(client, "Hi **there**")
    QApplication.clipboard().clear()
    qtbot.keyClick(window.composer.input, Qt.Key.Key_C,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert QApplication.clipboard().text() == "Hi **there**"
    qtbot.keyClick(window.composer.input, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.sidebar.search_box.hasFocus()
    qtbot.keyClick(window.sidebar.search_box, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.chat_view.is_empty() and window.controller.conversation_id is None
    assert window.composer.input.hasFocus()
    assert window.settings_action.shortcut() == QKeySequence("Ctrl+,")
    for action, (key, _what) in shortcuts.SHORTCUTS.items():
        assert key in shortcuts.overview_html(), action


def test_every_focusable_control_has_a_name_and_tab_follows_the_layout(qtbot, env) -> None:
    window, client, _, _ = env
    _send(qtbot, window, "Write code")
    _answer(client, "```python\nprint(1)\n```\n\nDone.")
    window.controller.regenerate()
    _answer(client, "Again")
    window.banner.show_notice("Heads up", "Something to read", "Do it", "x")
    window.composer.set_text("draft")  # Send is enabled only with something to send
    # The transcript re-chains its controls on a coalescing timer after the layout changes.
    QApplication.processEvents()  # deliver the pending layout requests that start the timer
    qtbot.waitUntil(lambda: not window.chat_view._tab_timer.isActive(), timeout=5000)
    focusable = shortcuts.focusable_widgets(window)
    assert len(focusable) > 10
    missing = [f"{type(w).__name__}({w.objectName()})" for w in shortcuts.unnamed(focusable)]
    assert missing == []
    order = [shortcuts.spoken_name(w) for w in focusable]
    # Sidebar first, then the notice, the transcript and its message actions, the composer last.
    first = {name: order.index(name) for name in (
        "New chat", "Search conversations", "Conversations", "Do it", "Messages", "Edit message",
        "Next version" if "Next version" in order else "Previous version", "Message", "Thinking")}
    assert list(first.values()) == sorted(first.values()), order
    assert order[-1] in ("Send", "Stop")


def test_screenshot_of_a_conversation_with_a_branch_switcher(qtbot, env) -> None:
    window, client, _, _ = env
    window.resize(1200, 800)
    _send(qtbot, window, "Write a haiku about autumn")
    _answer(client, "Crisp leaves drift and fall,\nthe maple lets go of red—\nquiet, the long road.")
    user = window.chat_view.messages[0]
    user.start_edit()
    user.editor.input.setPlainText("Write a haiku about spring")
    user.editor.send_button.click()
    _answer(client, "Blossoms on the wind,\nthe river carries petals—\nmorning light returns.")
    window.controller.regenerate()
    _answer(client, "Soft rain on new leaves,\na robin tests the morning—\nthe garden wakes up.")
    for scheme in ("light", "dark"):
        window.theme_manager.apply(theme=scheme)
        path = save(window, f"{scheme}-branch-switcher")
        assert path.stat().st_size > 10_000
    window.theme_manager.apply(theme="light")
    window.chat_view.messages[0].start_edit()
    assert save(window, "light-edit-message").stat().st_size > 10_000
    window.chat_view.messages[0].cancel_edit()
