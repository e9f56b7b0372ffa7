"""Ask before a tool runs: its name, its arguments, and Allow once / Always allow / Deny."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.tools.loop import Consent
from app.ui import theme
from app.ui.tool_block import pretty


class ConsentButtons(QWidget):
    """Deny · Always allow this tool · Allow once; ``sig_answered(Consent)`` on a click.

    The dialog uses it, and so does the tool block in the conversation (asked inline).
    """

    sig_answered = Signal(object)  # Consent

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ToolConsentButtons")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        self.deny_button = QPushButton("Deny", self)
        self.always_button = QPushButton("Always allow this tool", self)
        self.allow_button = QPushButton("Allow once", self)
        row.addWidget(self.deny_button)
        row.addStretch(1)
        row.addWidget(self.always_button)
        row.addWidget(self.allow_button)
        self.deny_button.clicked.connect(lambda: self.sig_answered.emit(Consent.DENY))
        self.always_button.clicked.connect(lambda: self.sig_answered.emit(Consent.ALWAYS))
        self.allow_button.clicked.connect(lambda: self.sig_answered.emit(Consent.ALLOW_ONCE))


class ToolConsentDialog(QDialog):
    """Modal question; ``choice`` is the answer (Deny when the dialog is closed)."""

    def __init__(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        server: str = "",
        description: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ToolConsentDialog")
        self.setWindowTitle("Allow this tool?")
        self.setAccessibleName("Allow this tool?")
        self.choice = Consent.DENY
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 20, 22, 18)
        layout.setSpacing(10)

        title = QLabel(f"The model wants to run <b>{_escape(name)}</b>", self)
        title.setObjectName("ToolConsentTitle")
        title.setTextFormat(Qt.TextFormat.RichText)
        # The app stylesheet sets label fonts, so the size goes through a stylesheet too.
        title.setStyleSheet(f"font-size: {theme.BASE_POINT_SIZE * 1.3:.1f}pt;")
        layout.addWidget(title)
        where = f"From the MCP server “{server}”. " if server else ""
        note = QLabel(where + "Check the arguments it will receive.", self)
        note.setObjectName("ToolConsentNote")
        note.setStyleSheet(f"color: {theme.color('text_muted')};")
        note.setWordWrap(True)
        layout.addWidget(note)
        if description:
            about = QLabel(description.strip().splitlines()[0], self)
            about.setWordWrap(True)
            layout.addWidget(about)

        self.arguments_view = QPlainTextEdit(pretty(arguments) if arguments else "{}", self)
        self.arguments_view.setObjectName("ToolArguments")
        self.arguments_view.setReadOnly(True)
        self.arguments_view.setFont(theme.mono_font())
        self.arguments_view.setAccessibleName("Arguments")
        # Tall enough for the whole JSON (up to a limit, then it scrolls); one line of slack
        # because the app stylesheet may set a larger font after this is measured.
        lines = self.arguments_view.toPlainText().count("\n") + 2
        height = self.arguments_view.fontMetrics().lineSpacing() * min(max(lines, 3), 16) + 24
        self.arguments_view.setMinimumHeight(height)
        layout.addWidget(self.arguments_view)

        self.buttons = ConsentButtons(self)
        self.deny_button = self.buttons.deny_button
        self.always_button = self.buttons.always_button
        self.allow_button = self.buttons.allow_button
        self.allow_button.setDefault(True)
        layout.addWidget(self.buttons)
        self.buttons.sig_answered.connect(self._answer)
        self.setMinimumWidth(460)

    def _answer(self, choice: Consent) -> None:
        self.choice = choice
        if choice is Consent.DENY:
            self.reject()
        else:
            self.accept()

    def ask(self) -> Consent:
        """Show modally and return the user's answer."""
        self.exec()
        return self.choice


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
