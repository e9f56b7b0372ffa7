"""The collapsible block that shows one tool call and its result in the conversation."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.storage.records import ToolCallRecord
from app.core.tools.loop import DENIED
from app.ui import theme

if TYPE_CHECKING:
    from app.ui.tool_consent import ConsentButtons

RESULT_BUDGET = 600  # characters of a result shown before "Show all"

CallState = Literal["called", "waiting", "running", "done", "error", "denied"]
_HEADERS: dict[str, str] = {
    "called": "Calling {name}…",
    "waiting": "Waiting for your permission to run {name}",
    "running": "Running {name}…",
    "done": "Ran {name}",
    "error": "{name} failed",
    "denied": "Did not run {name} (denied)",
}


def pretty(value: Any) -> str:
    """Arguments or a result as indented JSON (text stays as it is)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def truncate(text: str, budget: int = RESULT_BUDGET) -> tuple[str, bool]:
    """The shown part of a result and whether anything was cut (cut at a line end if near)."""
    if len(text) <= budget:
        return text, False
    cut = text.rfind("\n", budget - 120, budget)
    return text[: cut if cut > 0 else budget].rstrip() + "\n…", True


def _code_label(object_name: str, parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setObjectName(object_name)
    label.setFont(theme.mono_font())
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


class ToolBlock(QWidget):
    """Header "Ran get_current_time" that folds out the arguments and the (budgeted) result."""

    sig_toggled = Signal(bool)  # expanded

    def __init__(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        server: str = "",
        budget: int = RESULT_BUDGET,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ToolBlock")
        self.name = name
        self.server = server
        self.budget = budget
        self.state: CallState = "waiting"
        self._result_text = ""
        self._expanded = False
        self.consent_buttons: ConsentButtons | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.header = QToolButton(self)
        self.header.setObjectName("ThinkingHeader")  # the same quiet header as thinking
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setIconSize(theme.icon_size(16))
        self.header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.header.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.header.clicked.connect(self._on_header_clicked)
        layout.addWidget(self.header, 0, Qt.AlignmentFlag.AlignLeft)

        self.body = QFrame(self)
        self.body.setObjectName("ThinkingBody")
        body = self._body_layout = QVBoxLayout(self.body)
        body.setContentsMargins(14, 2, 0, 2)
        body.setSpacing(4)
        self.args_caption = QLabel("Arguments" + (f" · {server}" if server else ""), self.body)
        self.args_caption.setObjectName("ToolCaption")
        self.args_caption.setStyleSheet(f"color: {theme.color('text_muted')};")
        body.addWidget(self.args_caption)
        self.args_view = _code_label("ToolArguments", self.body)
        self.args_view.setText(pretty(arguments))
        body.addWidget(self.args_view)
        self.result_caption = QLabel("Result", self.body)
        self.result_caption.setObjectName("ToolCaption")
        self.result_caption.setStyleSheet(f"color: {theme.color('text_muted')};")
        body.addWidget(self.result_caption)
        self.result_view = _code_label("ToolResult", self.body)
        body.addWidget(self.result_view)
        self.show_all = QPushButton("Show all", self.body)
        self.show_all.setObjectName("ToolShowAll")
        self.show_all.setCursor(Qt.CursorShape.PointingHandCursor)
        self.show_all.setFlat(True)
        self.show_all.clicked.connect(self._on_show_all_clicked)
        body.addWidget(self.show_all, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.body)
        self._show_result(False)
        self.set_state("waiting")
        self.set_expanded(True)

    @property
    def expanded(self) -> bool:
        return self._expanded

    @property
    def result_text(self) -> str:
        """The full result, whatever is shown."""
        return self._result_text

    def header_text(self) -> str:
        return self.header.text()

    def set_state(self, state: CallState) -> None:
        """Move the header to a new phase (called → waiting → running → done/error, or denied)."""
        self.state = state
        self.header.setText(_HEADERS[state].format(name=self.name))
        color = "danger" if state in ("error", "denied") else "text_muted"
        icon = "warning" if state in ("error", "denied") else "sparkle"
        self.header.setIcon(theme.icon(icon, color, 16))

    def set_result(self, content: str | dict[str, Any], *, is_error: bool = False) -> None:
        """Show the result, cut to the budget; the block folds up unless it failed."""
        self._result_text = pretty(content)
        shown, cut = truncate(self._result_text, self.budget)
        self.result_view.setText(shown)
        self.show_all.setText(f"Show all ({len(self._result_text):,} characters)")
        self._show_result(True)
        self.show_all.setVisible(cut)
        if self.state != "denied":
            self.set_state("error" if is_error else "done")
        self.set_expanded(is_error)

    def ask_consent(self) -> ConsentButtons:
        """Show Deny / Always allow / Allow once under the arguments (the block waits, open).

        The buttons go away on the first answer; connect to their ``sig_answered``.
        """
        from app.ui.tool_consent import ConsentButtons  # tool_consent uses this module's pretty()

        self.set_state("waiting")
        self.set_expanded(True)
        buttons = ConsentButtons(self.body)
        buttons.setMaximumWidth(520)
        self._body_layout.addWidget(buttons)
        buttons.sig_answered.connect(lambda _choice: self._close_consent(buttons))
        self.consent_buttons = buttons
        buttons.allow_button.setFocus()
        return buttons

    def _close_consent(self, buttons: ConsentButtons) -> None:
        buttons.hide()
        buttons.deleteLater()
        self.consent_buttons = None

    def _show_result(self, visible: bool) -> None:
        self.result_caption.setVisible(visible)
        self.result_view.setVisible(visible)
        self.show_all.setVisible(False)

    def set_expanded(self, expanded: bool) -> None:
        if expanded == self._expanded and self.body.isVisible() == expanded:
            return
        self._expanded = expanded
        self.body.setVisible(expanded)
        self.header.setAccessibleName(
            f"{self.header.text()}, {'expanded' if expanded else 'collapsed'}"
        )
        self.sig_toggled.emit(expanded)

    def _on_header_clicked(self) -> None:
        self.set_expanded(not self._expanded)

    def _on_show_all_clicked(self) -> None:
        self.result_view.setText(self._result_text)
        self.show_all.setVisible(False)


def call_arguments(call: ToolCallRecord) -> Any:
    """What a stored call's block shows as its arguments: a malformed call shows what was written."""
    return call.raw if call.is_error and not call.arguments and call.raw else call.arguments


def show_stored_call(block: ToolBlock, call: ToolCallRecord) -> None:
    """A stored call's outcome on its block: done, failed, or denied by the user."""
    if call.is_error and call.result == DENIED:
        block.set_state("denied")
    block.set_result(call.result, is_error=call.is_error)
