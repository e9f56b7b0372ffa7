"""The composer: Enter sends, Shift+Enter adds a line, Esc stops, Send turns into Stop."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.ui.composer import ComposerWidget


def _composer(qtbot) -> ComposerWidget:
    composer = ComposerWidget()
    qtbot.addWidget(composer)
    composer.resize(800, 140)
    composer.show()
    qtbot.waitExposed(composer)
    return composer


def test_enter_sends_and_clears(qtbot) -> None:
    composer = _composer(qtbot)
    qtbot.keyClicks(composer.input, "Hello Gemma")
    with qtbot.waitSignal(composer.sig_send_requested) as sent:
        qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    assert sent.args == ["Hello Gemma"]
    assert composer.text() == ""


def test_shift_enter_adds_a_line_and_does_not_send(qtbot) -> None:
    composer = _composer(qtbot)
    sent: list[str] = []
    composer.sig_send_requested.connect(sent.append)
    qtbot.keyClicks(composer.input, "first")
    qtbot.keyClick(composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.input, "second")
    assert composer.text() == "first\nsecond"
    assert sent == []
    height_two_lines = composer.input.height()
    qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    assert sent == ["first\nsecond"]
    assert composer.input.height() < height_two_lines  # the box shrinks back to one line


def test_blank_text_is_not_sent_and_send_is_disabled(qtbot) -> None:
    composer = _composer(qtbot)
    sent: list[str] = []
    composer.sig_send_requested.connect(sent.append)
    assert not composer.send_button.isEnabled()
    qtbot.keyClicks(composer.input, "   ")
    qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    assert sent == []
    assert not composer.send_button.isEnabled()
    qtbot.keyClicks(composer.input, "x")
    assert composer.send_button.isEnabled()


def test_send_becomes_stop_and_esc_stops(qtbot) -> None:
    composer = _composer(qtbot)
    composer.set_generating(True)
    assert composer.send_button.accessibleName() == "Stop"
    assert composer.send_button.isEnabled()
    with qtbot.waitSignal(composer.sig_stop_requested):
        qtbot.mouseClick(composer.send_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(composer.sig_stop_requested):
        qtbot.keyClick(composer.input, Qt.Key.Key_Escape)
    # While generating, Enter does not send a second message.
    sent: list[str] = []
    composer.sig_send_requested.connect(sent.append)
    qtbot.keyClicks(composer.input, "next question")
    qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    assert sent == []
    assert composer.text() == "next question"
    composer.set_generating(False)
    assert composer.send_button.accessibleName() == "Send"
    stops: list[bool] = []
    composer.sig_stop_requested.connect(lambda: stops.append(True))
    qtbot.keyClick(composer.input, Qt.Key.Key_Escape)
    assert stops == []


def test_ctrl_enter_mode(qtbot) -> None:
    composer = _composer(qtbot)
    composer.set_send_with_ctrl_enter(True)
    sent: list[str] = []
    composer.sig_send_requested.connect(sent.append)
    qtbot.keyClicks(composer.input, "a")
    qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    qtbot.keyClicks(composer.input, "b")
    assert sent == [] and composer.text() == "a\nb"
    qtbot.keyClick(composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert sent == ["a\nb"]


def test_thinking_toggle_and_tool_buttons(qtbot) -> None:
    composer = _composer(qtbot)
    composer.set_thinking(False)
    with qtbot.waitSignal(composer.sig_thinking_toggled) as toggled:
        qtbot.mouseClick(composer.thinking_toggle, Qt.MouseButton.LeftButton)
    assert toggled.args == [True] and composer.thinking_enabled()
    with qtbot.waitSignal(composer.sig_attach_image_requested):
        qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(composer.sig_mic_requested):
        qtbot.mouseClick(composer.mic_button, Qt.MouseButton.LeftButton)
    composer.set_model_name("gemma-4-E2B-it-Q8_0")
    assert composer.model_chip.text() == "gemma-4-E2B-it-Q8_0"
