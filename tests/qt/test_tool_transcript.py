"""An answer's stored tool steps in the transcript (fast: no engine; the slow end-to-end run with the
real engine and MCP server is tests/qt/test_window_tools.py)."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from app.core.storage.records import ToolCallRecord, ToolStep
from app.core.tools.loop import DENIED, Consent
from app.ui import theme
from app.ui.messages import AssistantMessageWidget
from app.ui.tool_block import ToolBlock

TOKYO = {"timezone": "Asia/Tokyo", "datetime": "2026-12-01T03:21:51+09:00"}
STEPS = (
    ToolStep("look it up", "", (
        ToolCallRecord("call_1", "get_current_time", {"timezone": "Asia/Tokyo"}, TOKYO,
                       server="time"),
        ToolCallRecord("call_2", "get_current_time", {"timezone": "Europe/Paris"}, DENIED,
                       is_error=True),
    ), 1.2),
    ToolStep("", "One more.", (
        ToolCallRecord("call_3", "get_current_time", {}, "malformed call: at 31", is_error=True,
                       raw="<|tool_call>call:get_current_time{timezone:Paris}<tool_call|>"),
    )),
)


def test_stored_steps_show_in_order_with_their_outcomes(qapp: QApplication, qtbot) -> None:
    theme.ThemeManager(qapp, "light").apply()
    widget = AssistantMessageWidget("Gemma")
    qtbot.addWidget(widget)  # closed and deleted by pytest-qt, its pending events with it
    widget.set_content("It is 3 am in Tokyo.", "final thought", 0.5, "complete", {}, STEPS)
    assert [b.state for b in widget.tool_blocks] == ["done", "denied", "error"]
    done, denied, malformed = widget.tool_blocks
    assert not done.expanded and done.result_text.startswith("{")
    assert denied.expanded and "denied" in denied.header_text()
    assert "timezone:Paris" in malformed.args_view.text()  # what the model wrote
    assert widget.markdown == "It is 3 am in Tokyo." and widget.thinking.text == "final thought"
    # Order in the answer: step 1's thought, its calls, step 2's text, its call, the final reply.
    layout = widget.layout()
    assert layout is not None
    order = [layout.itemAt(i).widget() for i in range(layout.count())]
    index = {id(w): i for i, w in enumerate(order) if w is not None}
    positions = [index[id(b)] for b in widget.tool_blocks]
    assert positions == sorted(positions) and positions[-1] < index[id(widget.thinking)]
    assert index[id(widget.thinking)] < index[id(widget.answer)] < index[id(widget.footer)]


def test_inline_consent_answers_once_and_goes_away(qapp: QApplication, qtbot) -> None:
    block = ToolBlock("get_current_time", {"timezone": "Asia/Tokyo"})
    qtbot.addWidget(block)
    answers: list[Consent] = []
    buttons = block.ask_consent()
    buttons.sig_answered.connect(answers.append)
    assert block.state == "waiting" and block.expanded
    buttons.always_button.click()
    assert answers == [Consent.ALWAYS] and block.consent_buttons is None and buttons.isHidden()
