"""Branches of a conversation: the ‹ 1/2 › switcher on a message and the inline editor of a user message.

Editing a user message or regenerating an answer never overwrites anything: the new version is a
sibling in the message tree (same parent, same role). The switcher shows which sibling is on
screen and flips between them; the controller then makes that sibling's newest leaf current.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

# ---- pure helpers (no widgets) ------------------------------------------------------------


def branch_positions(messages: Iterable[Any], thread: Sequence[Any]) -> dict[Any, tuple[int, int]]:
    """{message id: (1-based position, count)} for each message of `thread` that has siblings.

    `messages` is every message of the conversation (all branches); siblings share parent and
    role, ordered by id (creation order), as HistoryStore.siblings orders them.
    """
    groups: dict[tuple[Any, str], list[Any]] = {}
    for message in messages:
        groups.setdefault((message.parent_id, message.role), []).append(message.id)
    positions: dict[Any, tuple[int, int]] = {}
    for message in thread:
        ids = sorted(groups.get((message.parent_id, message.role), []))
        if len(ids) > 1 and message.id in ids:
            positions[message.id] = (ids.index(message.id) + 1, len(ids))
    return positions


def sibling_at(siblings: Sequence[Any], message_id: Any, step: int) -> Any | None:
    """The sibling `step` places away from message_id, or None past either end."""
    ids = [s.id for s in siblings]
    if message_id not in ids:
        return None
    index = ids.index(message_id) + step
    return siblings[index] if 0 <= index < len(siblings) else None


# ---- widgets ------------------------------------------------------------------------------


class BranchSwitcherWidget(QWidget):
    """‹ 2/3 ›: which version of a message is shown; the arrows ask for the previous/next one."""

    sig_step_requested = Signal(int)  # -1 or +1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("BranchSwitcher")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.previous_button = QToolButton(self)
        self.previous_button.setObjectName("MessageAction")
        self.previous_button.setText("‹")
        self.previous_button.setAccessibleName("Previous version")
        self.previous_button.setToolTip("Show the previous version")
        self.previous_button.clicked.connect(lambda: self.sig_step_requested.emit(-1))
        self.label = QLabel(self)
        self.label.setObjectName("RoleLabel")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.next_button = QToolButton(self)
        self.next_button.setObjectName("MessageAction")
        self.next_button.setText("›")
        self.next_button.setAccessibleName("Next version")
        self.next_button.setToolTip("Show the next version")
        self.next_button.clicked.connect(lambda: self.sig_step_requested.emit(+1))
        for button in (self.previous_button, self.next_button):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setAutoRaise(True)
        row.addWidget(self.previous_button)
        row.addWidget(self.label)
        row.addWidget(self.next_button)
        self.set_position(1, 1)

    def set_position(self, index: int, count: int) -> None:
        """Show version `index` of `count`; hidden when there is only one."""
        self.index, self.count = index, count
        self.label.setText(f"{index}/{count}")
        self.label.setAccessibleName(f"Version {index} of {count}")
        self.previous_button.setEnabled(index > 1)
        self.next_button.setEnabled(index < count)
        self.setVisible(count > 1)


class MessageEditorWidget(QFrame):
    """Edit a sent message in place: Ctrl+Enter (or Send) sends the new version, Esc cancels."""

    sig_submitted = Signal(str)
    sig_cancelled = Signal()

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Drawn as the user's bubble (the theme styles it), so it reads as "this message, editable".
        self.setObjectName("UserBubble")
        column = QVBoxLayout(self)
        column.setContentsMargins(14, 10, 14, 10)
        column.setSpacing(6)
        self.input = QPlainTextEdit(self)
        self.input.setObjectName("ComposerInput")
        self.input.setAccessibleName("Edit message")
        self.input.setPlainText(text)
        self.input.setTabChangesFocus(True)
        lines = max(2, min(10, text.count("\n") + 2))
        self.input.setFixedHeight(lines * self.input.fontMetrics().lineSpacing() + 20)
        self.input.installEventFilter(self)
        column.addWidget(self.input)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setAccessibleName("Cancel editing")
        self.cancel_button.clicked.connect(self.sig_cancelled)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("SettingsPrimary")
        self.send_button.setAccessibleName("Send the edited message")
        self.send_button.setToolTip("Send the edited message as a new version (Ctrl+Enter)")
        self.send_button.clicked.connect(self._submit)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.send_button)
        column.addLayout(buttons)

    @property
    def text(self) -> str:
        return self.input.toPlainText()

    def focus(self) -> None:
        self.input.setFocus(Qt.FocusReason.OtherFocusReason)
        cursor = self.input.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.input.setTextCursor(cursor)

    def _submit(self) -> None:
        if self.text.strip():
            self.sig_submitted.emit(self.text.strip())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.input and event.type() in (QEvent.Type.ShortcutOverride,
                                                      QEvent.Type.KeyPress):
            assert isinstance(event, QKeyEvent)
            ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
            enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            if event.key() == Qt.Key.Key_Escape or (enter and ctrl):
                # Claim Esc before the window's "stop" shortcut sees it.
                event.accept()
                if event.type() == QEvent.Type.KeyPress:
                    if event.key() == Qt.Key.Key_Escape:
                        self.sig_cancelled.emit()
                    else:
                        self._submit()
                return True
        return super().eventFilter(watched, event)
