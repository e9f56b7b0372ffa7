"""Message widgets of the transcript: the user's bubble and the assistant's full-width answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.storage.records import ToolStep
from app.ui import theme
from app.ui.branch_switcher import BranchSwitcherWidget, MessageEditorWidget
from app.ui.markdown_view import AnswerView
from app.ui.thinking_block import ThinkingBlock
from app.ui.tool_block import ToolBlock, call_arguments, show_stored_call

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
    """The user's message: a tinted bubble on the right; Edit and Copy appear on hover or focus."""

    sig_edit_submitted = Signal(object, str)  # message id, new text
    sig_branch_step_requested = Signal(object, int)  # message id, -1 | +1

    def __init__(self, text: str, message_id: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id = message_id
        self._text = text
        self.editor: MessageEditorWidget | None = None
        row = QHBoxLayout(self)
        self._row = row
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addStretch(1)
        self.branch_switcher = BranchSwitcherWidget(self)
        self.branch_switcher.sig_step_requested.connect(
            lambda step: self.sig_branch_step_requested.emit(self.message_id, step))
        row.addWidget(self.branch_switcher, 0, Qt.AlignmentFlag.AlignBottom)
        # Edit and Copy sit left of the bubble; their icons show on hover (or keyboard focus),
        # the buttons stay in place so Tab still reaches them and nothing moves.
        self.edit_button = _action_button(self, "rename", "Edit message")
        self.edit_button.clicked.connect(self.start_edit)
        row.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.copy_button = _action_button(self, "copy", "Copy message")
        self.copy_button.clicked.connect(self._on_copy_clicked)
        row.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignBottom)
        for button in (self.edit_button, self.copy_button):
            button.installEventFilter(self)
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
        self._show_actions(False)

    @property
    def text(self) -> str:
        return self._text

    def set_attachments(self, attachments: Any) -> None:
        """Thumbnails (click: larger view) and audio chips above the text, inside the bubble."""
        from app.ui.attachments import MessageAttachmentsView

        if not attachments:
            return
        self.attachments_view = MessageAttachmentsView(attachments, self.bubble)
        self.bubble.layout().insertWidget(0, self.attachments_view)
        self.label.setVisible(bool(self._text.strip()))

    def set_branch(self, index: int, count: int) -> None:
        """Show ‹ index/count › when this message has other versions."""
        self.branch_switcher.set_position(index, count)

    def start_edit(self) -> None:
        """Swap the bubble for an editor; sending it asks for a new version of this message."""
        if self.editor is not None:
            return
        self.editor = MessageEditorWidget(self._text, self)
        self.editor.sig_submitted.connect(
            lambda text: self.sig_edit_submitted.emit(self.message_id, text))
        self.editor.sig_cancelled.connect(self.cancel_edit)
        for widget in (self.bubble, self.edit_button, self.copy_button, self.branch_switcher):
            widget.setVisible(False)
        self._row.addWidget(self.editor, 6)
        self.editor.focus()

    def cancel_edit(self) -> None:
        if self.editor is None:
            return
        self.editor.deleteLater()
        self.editor = None
        for widget in (self.bubble, self.edit_button, self.copy_button):
            widget.setVisible(True)
        self.branch_switcher.setVisible(self.branch_switcher.count > 1)
        self._show_actions(False)
        self.edit_button.setFocus()

    def set_max_bubble_width(self, width: int) -> None:
        # A word-wrapped QLabel guesses its width badly; measure the text and fix the width so
        # short messages hug their text and long ones wrap at the column's 78 %.
        metrics = self.label.fontMetrics()
        natural = max((metrics.horizontalAdvance(line) for line in self._text.split("\n")),
                      default=0)
        self.label.setFixedWidth(max(8, min(natural + 4, width - 32)))

    def refresh_icons(self) -> None:
        self._show_actions(self._actions_shown)

    def _show_actions(self, shown: bool) -> None:
        self._actions_shown = shown
        for button in (self.edit_button, self.copy_button):
            name = str(button.property("icon_name"))
            button.setIcon(theme.icon(name, "text_muted", 16) if shown else QIcon())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Enter:
            self._show_actions(True)
        elif event.type() == QEvent.Type.Leave:
            self._show_actions(self.edit_button.hasFocus() or self.copy_button.hasFocus())
        return super().event(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.FocusIn:
            self._show_actions(True)
        elif event.type() == QEvent.Type.FocusOut:
            self._show_actions(self.underMouse())
        return super().eventFilter(watched, event)

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self._text)


class AssistantMessageWidget(QWidget):
    """One answer: model label, collapsible thinking, Markdown answer, status and actions."""

    sig_regenerate_requested = Signal(object)  # message id
    sig_thinking_toggled = Signal(bool)
    sig_branch_step_requested = Signal(object, int)  # message id, -1 | +1

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

        self._layout = layout
        self.tool_blocks: list[ToolBlock] = []  # every call of this answer, in order
        self.error_label = QLabel(self)
        self.error_label.setObjectName("ErrorTag")
        self.error_label.setWordWrap(True)
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)
        self._add_reply_widgets()  # thinking and answer, above the error label

        foot = QHBoxLayout()
        foot.setContentsMargins(0, 0, 0, 0)
        foot.setSpacing(2)
        self.branch_switcher = BranchSwitcherWidget(self)
        self.branch_switcher.sig_step_requested.connect(
            lambda step: self.sig_branch_step_requested.emit(self.message_id, step))
        foot.addWidget(self.branch_switcher)
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

    # ---- tool steps ---------------------------------------------------------------------------

    def end_step(self, thinking_seconds: float | None = None) -> None:
        """The reply so far ended in tool calls: its thinking and text stay above the calls."""
        if self.thinking.streaming:
            self.thinking.finish(thinking_seconds)
        self.flush()
        self.answer.setVisible(bool(self._answer.strip()))

    def add_tool_block(self, name: str, arguments: Any, server: str = "") -> ToolBlock:
        """A call of the current step, below its thinking and text."""
        block = ToolBlock(name, arguments, server=server, parent=self)
        self._insert(block)
        self.tool_blocks.append(block)
        return block

    def next_step(self) -> None:
        """The model goes on after the tool results: fresh thinking and answer below the calls."""
        self._add_reply_widgets()
        self._answer = ""
        self.answer.refresh_icons()

    def _add_reply_widgets(self) -> None:
        self.thinking = ThinkingBlock(self)
        self.thinking.setVisible(False)
        self.thinking.sig_toggled.connect(self.sig_thinking_toggled)
        self._insert(self.thinking)
        self.answer = AnswerView(self)
        self._insert(self.answer)

    def add_stored_steps(self, tool_steps: Sequence[ToolStep]) -> None:
        """Finished tool steps, each with its thinking, text and calls; what follows goes below."""
        for step in tool_steps:
            if step.thinking.strip():
                self.thinking.setVisible(True)
                self.thinking.set_static(step.thinking, step.thinking_seconds)
            self._answer = step.content
            self.end_step()
            for call in step.calls:
                show_stored_call(self.add_tool_block(call.name, call_arguments(call), call.server),
                                 call)
            self.next_step()

    def _insert(self, widget: QWidget) -> None:
        self._layout.insertWidget(self._layout.indexOf(self.error_label), widget)

    def set_content(self, content: str, thinking: str = "", thinking_seconds: float | None = None,
                    status: str = "complete", stats: dict[str, Any] | None = None,
                    tool_steps: Sequence[ToolStep] = ()) -> None:
        """Show a stored message at once (with the tool calls it made, each step in order)."""
        self.add_stored_steps(tool_steps)
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

    def set_branch(self, index: int, count: int) -> None:
        """Show ‹ index/count › when this answer has other versions (regenerated or edited)."""
        self.branch_switcher.set_position(index, count)

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
