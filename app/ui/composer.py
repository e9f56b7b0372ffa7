"""The message composer: text, attach image, microphone, Thinking toggle, model chip, Send/Stop."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme

MAX_INPUT_LINES = 8


class ComposerWidget(QWidget):
    """Enter sends, Shift+Enter adds a line, Esc stops; Send turns into Stop while generating."""

    sig_send_requested = Signal(str)
    sig_stop_requested = Signal()
    sig_attach_image_requested = Signal()
    sig_mic_requested = Signal()
    sig_thinking_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._generating = False
        self._ctrl_enter_sends = False
        self._has_attachments = False  # images/clips alone may be sent without text
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 6, 24, 8)
        outer.setSpacing(6)

        self.frame = QFrame(self)
        self.frame.setObjectName("ComposerFrame")
        self.frame.setMaximumWidth(800)
        frame_layout = QVBoxLayout(self.frame)
        frame_layout.setContentsMargins(14, 10, 10, 8)
        frame_layout.setSpacing(4)

        self.input = QPlainTextEdit(self.frame)
        self.input.setObjectName("ComposerInput")
        self.input.setPlaceholderText("Message Gemma…")
        self.input.setAccessibleName("Message")
        self.input.setFrameShape(QFrame.Shape.NoFrame)
        self.input.setTabChangesFocus(True)
        self.input.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.input.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.input.document().setDocumentMargin(2)
        self.input.installEventFilter(self)
        self.input.textChanged.connect(self._on_input_text_changed)
        frame_layout.addWidget(self.input)

        tools = QHBoxLayout()
        tools.setSpacing(4)
        self.attach_button = self._tool_button("image", "Attach an image")
        self.attach_button.clicked.connect(self.sig_attach_image_requested)
        tools.addWidget(self.attach_button)
        self.mic_button = self._tool_button("mic", "Record a voice message")
        self.mic_button.clicked.connect(self.sig_mic_requested)
        tools.addWidget(self.mic_button)
        tools.addSpacing(4)

        self.thinking_toggle = QToolButton(self.frame)
        self.thinking_toggle.setObjectName("ThinkingToggle")
        self.thinking_toggle.setCheckable(True)
        self.thinking_toggle.setText("Thinking")
        self.thinking_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thinking_toggle.setIconSize(theme.icon_size(16))
        self.thinking_toggle.setToolTip("Let the model think before it answers")
        self.thinking_toggle.setAccessibleName("Thinking")
        self.thinking_toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.thinking_toggle.toggled.connect(self._on_thinking_toggle_toggled)
        tools.addWidget(self.thinking_toggle)
        tools.addStretch(1)

        self.model_chip = QLabel("No model", self.frame)
        self.model_chip.setObjectName("ModelChip")
        self.model_chip.setAccessibleName("Active model")
        tools.addWidget(self.model_chip)
        tools.addSpacing(6)

        self.send_button = QToolButton(self.frame)
        self.send_button.setObjectName("SendButton")
        self.send_button.setIconSize(theme.icon_size(20))
        self.send_button.setFixedSize(34, 34)
        self.send_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.send_button.clicked.connect(self._on_send_button_clicked)
        tools.addWidget(self.send_button)
        frame_layout.addLayout(tools)

        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.frame, 100)
        row.addStretch(1)
        outer.addLayout(row)

        self.footnote = QLabel(self)
        self.set_runs_on(None)
        self.footnote.setObjectName("ComposerFootnote")
        self.footnote.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.footnote)

        self._fit_input_height()
        self._update_send_button()
        self.refresh_icons()

    # ---- public -----------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._generating

    def text(self) -> str:
        return self.input.toPlainText()

    def set_text(self, text: str) -> None:
        self.input.setPlainText(text)

    def set_generating(self, generating: bool) -> None:
        """Send becomes Stop (and back)."""
        self._generating = generating
        self._update_send_button()

    def set_has_attachments(self, has: bool) -> None:
        """Attachments waiting in the composer make Send available even without text."""
        self._has_attachments = has
        self._update_send_button()

    def set_send_with_ctrl_enter(self, enabled: bool) -> None:
        """Ctrl+Enter sends and Enter adds a line (for people who write long messages)."""
        self._ctrl_enter_sends = enabled
        self.send_button.setToolTip("Send (Ctrl+Enter)" if enabled else "Send (Enter)")

    def set_thinking(self, enabled: bool) -> None:
        self.thinking_toggle.setChecked(enabled)

    def thinking_enabled(self) -> bool:
        return self.thinking_toggle.isChecked()

    def set_runs_on(self, host: str | None) -> None:
        """Where the answers are written: this computer, or the server (host:port) the chat uses."""
        where = host or "this computer"
        self.footnote.setText(f"Gemma runs on {where} and can make mistakes.")

    def set_model_name(self, name: str) -> None:
        self.model_chip.setText(name or "No model")
        self.model_chip.setToolTip(name)

    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.OtherFocusReason)

    def refresh_icons(self) -> None:
        for button in (self.attach_button, self.mic_button):
            button.setIcon(theme.icon(str(button.property("icon_name")), "text_muted", 20))
        self._update_thinking_icon()
        self._update_send_button()

    # ---- internals --------------------------------------------------------------------------

    def _tool_button(self, icon_name: str, tip: str) -> QToolButton:
        button = QToolButton(self.frame)
        button.setObjectName("ComposerTool")
        button.setProperty("icon_name", icon_name)
        button.setIconSize(theme.icon_size(20))
        button.setToolTip(tip)
        button.setAccessibleName(tip)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        return button

    def _update_thinking_icon(self) -> None:
        on = self.thinking_toggle.isChecked()
        self.thinking_toggle.setIcon(theme.icon("thinking", "accent" if on else "text_muted", 16))

    def _update_send_button(self) -> None:
        button = self.send_button
        button.setProperty("stop", self._generating)
        if self._generating:
            button.setIcon(theme.icon("stop", "window", 20))
            button.setToolTip("Stop (Esc)")
            button.setAccessibleName("Stop")
            button.setEnabled(True)
        else:
            button.setIcon(theme.icon("send", "accent_text", 20))
            button.setToolTip("Send (Ctrl+Enter)" if self._ctrl_enter_sends else "Send (Enter)")
            button.setAccessibleName("Send")
            button.setEnabled(bool(self.text().strip()) or self._has_attachments)
        # A dynamic property only restyles after the style is re-polished.
        button.style().unpolish(button)
        button.style().polish(button)

    def _send(self) -> None:
        text = self.text().strip()
        if (not text and not self._has_attachments) or self._generating:
            return
        self.input.clear()
        self.sig_send_requested.emit(text)

    def _fit_input_height(self) -> None:
        # QPlainTextEdit's layout measures its document in lines (wrapped lines included).
        line = self.input.fontMetrics().lineSpacing()
        lines = max(1, min(MAX_INPUT_LINES, math.ceil(self.input.document().size().height())))
        margins = int(2 * self.input.document().documentMargin()) + 8
        self.input.setFixedHeight(lines * line + margins)
        self.input.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.input and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                mods = event.modifiers()
                if mods & Qt.KeyboardModifier.ShiftModifier:
                    return False  # Shift+Enter: a new line, as the editor does by itself
                if self._ctrl_enter_sends and not mods & Qt.KeyboardModifier.ControlModifier:
                    return False
                self._send()
                return True
            if key == Qt.Key.Key_Escape and self._generating:
                self.sig_stop_requested.emit()
                return True
        return super().eventFilter(watched, event)

    def _on_input_text_changed(self) -> None:
        self._fit_input_height()
        if not self._generating:
            self.send_button.setEnabled(bool(self.text().strip()) or self._has_attachments)

    def _on_send_button_clicked(self) -> None:
        if self._generating:
            self.sig_stop_requested.emit()
        else:
            self._send()

    def _on_thinking_toggle_toggled(self, checked: bool) -> None:
        self._update_thinking_icon()
        self.sig_thinking_toggled.emit(checked)
