"""Message widgets of the transcript: the user's bubble and the assistant's full-width answer."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme
from app.ui.markdown_view import AnswerView
from app.ui.thinking_block import ThinkingBlock

STATUS_TAGS = {"stopped": "Stopped", "interrupted": "Interrupted", "error": "Failed"}


def _action_button(parent: QWidget, icon_name: str, tip: str) -> QToolButton:
    button = QToolButton(parent)
    button.setObjectName("MessageAction")
    button.setIconSize(theme.icon_size(16))
    button.setToolTip(tip)
    button.setAccessibleName(tip)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setProperty("icon_name", icon_name)
    button.setIcon(theme.icon(icon_name, "text_muted", 16))
    return button


def format_stats(stats: dict[str, Any]) -> str:
    """'42.1 tok/s · 0.18 s to first token · 312 tokens' from the engine's stats."""
    parts: list[str] = []
    speed = stats.get("decode_tok_s")
    if isinstance(speed, int | float) and speed > 0:
        parts.append(f"{speed:.1f} tok/s")
    ttft = stats.get("ttft_ms")
    if isinstance(ttft, int | float) and ttft > 0:
        parts.append(f"{ttft / 1000:.2f} s to first token")
    tokens = stats.get("completion_tokens")
    if isinstance(tokens, int) and tokens > 0:
        parts.append(f"{tokens:,} tokens")
    return " · ".join(parts)


class UserMessageWidget(QWidget):
    """The user's message: a tinted bubble on the right; Copy appears on hover."""

    def __init__(self, text: str, message_id: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self._text = text
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addStretch(1)
        # Copy sits left of the bubble and shows on hover; its space is kept so nothing moves.
        self.copy_button = _action_button(self, "copy", "Copy message")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        sp = self.copy_button.sizePolicy()
        sp.setRetainSizeWhenHidden(True)
        self.copy_button.setSizePolicy(sp)
        self.copy_button.setVisible(False)
        row.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.bubble = QFrame(self)
        self.bubble.setObjectName("UserBubble")
        bubble_layout = QVBoxLayout(self.bubble)
        bubble_layout.setContentsMargins(16, 10, 16, 10)
        self.label = QLabel(self.bubble)
        self.label.setObjectName("UserText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setText(text)
        bubble_layout.addWidget(self.label)
        self.bubble.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        row.addWidget(self.bubble)

    @property
    def text(self) -> str:
        return self._text

    def set_max_bubble_width(self, width: int) -> None:
        # A word-wrapped QLabel guesses its width badly; measure the text and fix the width so
        # short messages hug their text and long ones wrap at the column's 78 %.
        metrics = self.label.fontMetrics()
        natural = max((metrics.horizontalAdvance(line) for line in self._text.split("\n")),
                      default=0)
        self.label.setFixedWidth(max(8, min(natural + 4, width - 32)))

    def refresh_icons(self) -> None:
        self.copy_button.setIcon(theme.icon("copy", "text_muted", 16))

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Enter:
            self.copy_button.setVisible(True)
        elif event.type() == QEvent.Type.Leave:
            self.copy_button.setVisible(False)
        return super().event(event)

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self._text)


class AssistantMessageWidget(QWidget):
    """One answer: model label, collapsible thinking, Markdown answer, status and actions."""

    sig_regenerate_requested = Signal(object)  # message id
    sig_thinking_toggled = Signal(bool)

    def __init__(self, model: str = "", message_id: Any = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self._answer = ""
        self._status = "streaming"
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.flush)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)

        head = QHBoxLayout()
        head.setSpacing(8)
        self.avatar = QLabel(self)
        self.avatar.setFixedSize(20, 20)
        head.addWidget(self.avatar)
        self.role_label = QLabel(model or "Gemma", self)
        self.role_label.setObjectName("RoleLabel")
        head.addWidget(self.role_label)
        head.addStretch(1)
        layout.addLayout(head)

        self.thinking = ThinkingBlock(self)
        self.thinking.setVisible(False)
        self.thinking.sig_toggled.connect(self.sig_thinking_toggled)
        layout.addWidget(self.thinking)

        self.answer = AnswerView(self)
        layout.addWidget(self.answer)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("ErrorTag")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)

        foot = QHBoxLayout()
        foot.setContentsMargins(0, 0, 0, 0)
        foot.setSpacing(2)
        self.copy_button = _action_button(self, "copy", "Copy answer (Markdown)")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        foot.addWidget(self.copy_button)
        self.regenerate_button = _action_button(self, "regenerate", "Regenerate answer")
        self.regenerate_button.clicked.connect(self._on_regenerate_clicked)
        self.regenerate_button.setVisible(False)
        foot.addWidget(self.regenerate_button)
        self.status_tag = QLabel(self)
        self.status_tag.setObjectName("StatusTag")
        self.status_tag.setVisible(False)
        foot.addSpacing(6)
        foot.addWidget(self.status_tag)
        foot.addSpacing(6)
        self.stats_label = QLabel(self)
        self.stats_label.setObjectName("RoleLabel")
        foot.addWidget(self.stats_label)
        foot.addStretch(1)
        self.footer = QWidget(self)
        self.footer.setLayout(foot)
        self.footer.setVisible(False)  # actions appear when the answer is done
        layout.addWidget(self.footer)
        self.refresh_icons()

    # ---- streaming --------------------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._status

    @property
    def markdown(self) -> str:
        return self._answer

    def append_thinking(self, text: str) -> None:
        if not text:
            return
        self.thinking.setVisible(True)
        self.thinking.append(text)

    def append_answer(self, text: str) -> None:
        if not text:
            return
        if self.thinking.streaming:
            self.thinking.finish()
        if not self._answer:
            text = text.lstrip()
        self._answer += text
        self._schedule_render()

    def finish(self, status: str = "complete", stats: dict[str, Any] | None = None,
               thinking_seconds: float | None = None, error: str | None = None) -> None:
        """The turn ended: close the thinking, show status, stats and actions."""
        if self.thinking.streaming:
            self.thinking.finish(thinking_seconds)
        self.flush()
        self._status = status
        tag = STATUS_TAGS.get(status)
        self.status_tag.setText(tag or "")
        self.status_tag.setVisible(bool(tag) and status != "error")
        if error:
            self.error_label.setText(error)
            self.error_label.setVisible(True)
        self.stats_label.setText(format_stats(stats or {}))
        self.copy_button.setVisible(bool(self._answer))
        self.footer.setVisible(True)

    def set_content(self, content: str, thinking: str = "", thinking_seconds: float | None = None,
                    status: str = "complete", stats: dict[str, Any] | None = None) -> None:
        """Show a stored message at once."""
        if thinking.strip():
            self.thinking.setVisible(True)
            self.thinking.set_static(thinking, thinking_seconds)
        self._answer = content
        self.flush()
        if status == "streaming":
            status = "interrupted"  # a placeholder left by a crash: its turn never finished
        self.finish(status, stats)

    def flush(self) -> None:
        """Render pending answer text now (normally done on the next event-loop turn)."""
        self._render_timer.stop()
        self.answer.set_markdown(self._answer)

    def set_regenerate_visible(self, visible: bool) -> None:
        self.regenerate_button.setVisible(visible)

    def refresh_icons(self) -> None:
        self.avatar.setPixmap(theme.icon("sparkle", "accent", 18).pixmap(18, 18))
        for button in (self.copy_button, self.regenerate_button):
            button.setIcon(theme.icon(str(button.property("icon_name")), "text_muted", 16))
        self.thinking.refresh_icons()
        self.answer.refresh_icons()

    # ---- internals --------------------------------------------------------------------------

    def _schedule_render(self) -> None:
        # Deltas arriving in one event-loop turn are rendered once.
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self._answer)
        self.copy_button.setIcon(theme.icon("check", "text_muted", 16))
        QTimer.singleShot(1500, self, self.refresh_icons)

    def _on_regenerate_clicked(self) -> None:
        self.sig_regenerate_requested.emit(self.message_id)
