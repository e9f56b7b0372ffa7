"""The transcript: a scrolling column of messages that follows the bottom while text streams."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from app.ui import shortcuts, theme
from app.ui.messages import AssistantMessageWidget, UserMessageWidget

COLUMN_MAX_WIDTH = 800
HIGHLIGHT_MS = 2500  # how long a search hit stays tinted
TAB_ORDER_DELAY_MS = 200
# Within this many pixels of the bottom counts as "at the bottom": keep following.
FOLLOW_SLACK_PX = 32

HINTS = (
    ("thinking", "Watch it think", "Turn on Thinking to see the model reason before it answers."),
    ("image", "Show it a picture", "Drop, paste or attach an image to ask about it."),
    ("mic", "Just say it", "Click the microphone and speak; your words go straight to Gemma."),
)


class EmptyStateWidget(QWidget):
    """What a new conversation shows: a friendly prompt and what the app can do."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(32, 32, 32, 32)
        outer.addStretch(3)
        self.logo = QLabel(self)
        self.logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.logo.setPixmap(theme.app_icon().pixmap(64, 64))
        outer.addWidget(self.logo)
        outer.addSpacing(14)
        title = QLabel("Ask Gemma anything", self)
        title.setObjectName("EmptyTitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(title)
        outer.addSpacing(4)
        self.privacy_hint = QLabel(self)
        self.privacy_hint.setObjectName("EmptyHint")
        self.privacy_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.set_runs_on(None)
        outer.addWidget(self.privacy_hint)
        outer.addSpacing(28)

        cards = QGridLayout()
        cards.setHorizontalSpacing(12)
        self._card_icons: list[tuple[QLabel, str]] = []
        for column, (icon_name, heading, text) in enumerate(HINTS):
            card = QFrame(self)
            card.setObjectName("HintCard")
            card.setFixedWidth(220)
            card.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
            lay = QVBoxLayout(card)
            lay.setContentsMargins(16, 14, 16, 14)
            lay.setSpacing(6)
            icon_label = QLabel(card)
            self._card_icons.append((icon_label, icon_name))
            lay.addWidget(icon_label)
            head = QLabel(heading, card)
            head.setObjectName("HintCardTitle")
            lay.addWidget(head)
            body = QLabel(text, card)
            body.setObjectName("HintCardText")
            body.setWordWrap(True)
            body.setFixedWidth(220 - 32)
            lay.addWidget(body)
            lay.addStretch(1)
            cards.addWidget(card, 0, column)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addLayout(cards)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(4)
        self.refresh_icons()

    def set_runs_on(self, host: str | None) -> None:
        """The privacy line: everything stays here, or messages go to the server the chat uses."""
        self.privacy_hint.setText(
            f"Answers come from {host}: your messages and attachments are sent there."
            if host else "Everything runs on this computer. Nothing you type leaves it.")

    def refresh_icons(self) -> None:
        for label, name in self._card_icons:
            label.setPixmap(theme.icon(name, "accent", 22).pixmap(22, 22))


class ChatView(QWidget):
    """Empty state or the messages of one conversation, centred in a readable column."""

    sig_regenerate_requested = Signal(object)  # assistant message id
    sig_edit_submitted = Signal(object, str)  # user message id, new text
    sig_branch_step_requested = Signal(object, int)  # message id, -1 | +1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatPane")
        self._stack = QStackedLayout(self)
        self.empty_state = EmptyStateWidget(self)
        self._stack.addWidget(self.empty_state)

        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("ChatView")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        transcript = QWidget()
        transcript.setObjectName("Transcript")
        row = QHBoxLayout(transcript)
        row.setContentsMargins(24, 24, 24, 32)
        row.addStretch(1)
        self.column = QWidget(transcript)
        self.column.setObjectName("ChatColumn")
        self.column.setMaximumWidth(COLUMN_MAX_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._messages_layout = QVBoxLayout(self.column)
        self._messages_layout.setContentsMargins(0, 0, 0, 0)
        self._messages_layout.setSpacing(16)
        self._messages_layout.addStretch(1)
        row.addWidget(self.column, 100)
        row.addStretch(1)
        self.scroll_area.setWidget(transcript)
        self._stack.addWidget(self.scroll_area)

        self._messages: list[QWidget] = []
        self._follow = True
        self._programmatic = False
        bar = self.scroll_area.verticalScrollBar()
        bar.rangeChanged.connect(self._on_scrollbar_range_changed)
        bar.valueChanged.connect(self._on_scrollbar_value_changed)
        self._stack.setCurrentWidget(self.empty_state)
        # Message controls join the Tab chain right after the transcript, in reading order;
        # re-done (coalesced) whenever the column's layout changes: new messages, code blocks.
        self._tab_timer = QTimer(self)
        self._tab_timer.setSingleShot(True)
        self._tab_timer.setInterval(TAB_ORDER_DELAY_MS)
        self._tab_timer.timeout.connect(self._on_tab_timer_timeout)
        self.column.installEventFilter(self)

    # ---- content ----------------------------------------------------------------------------

    @property
    def messages(self) -> list[QWidget]:
        return list(self._messages)

    @property
    def following(self) -> bool:
        """Whether new text keeps the view pinned to the bottom."""
        return self._follow

    def is_empty(self) -> bool:
        return not self._messages

    def clear(self) -> None:
        for widget in self._messages:
            self._messages_layout.removeWidget(widget)
            widget.hide()  # until deleteLater runs it would still paint at its old place
            widget.deleteLater()
        self._messages = []
        self._follow = True
        self._stack.setCurrentWidget(self.empty_state)

    def add_user_message(self, text: str, message_id: Any = None,
                         attachments: Any = ()) -> UserMessageWidget:
        widget = UserMessageWidget(text, message_id, self.column)
        widget.set_attachments(attachments)
        widget.set_max_bubble_width(self._bubble_width())
        widget.sig_edit_submitted.connect(self.sig_edit_submitted)
        widget.sig_branch_step_requested.connect(self.sig_branch_step_requested)
        self._append(widget)
        return widget

    def add_assistant_message(self, model: str = "", message_id: Any = None) -> AssistantMessageWidget:
        widget = AssistantMessageWidget(model, message_id, self.column)
        widget.sig_regenerate_requested.connect(self.sig_regenerate_requested)
        widget.sig_branch_step_requested.connect(self.sig_branch_step_requested)
        self._append(widget)
        return widget

    def load_thread(self, messages: Iterable[Any]) -> None:
        """Show stored messages (objects with role, content, thinking, thinking_seconds, status...)."""
        self.clear()
        for message in messages:
            role = getattr(message, "role", "")
            if role == "user":
                self.add_user_message(getattr(message, "content", ""), getattr(message, "id", None),
                                      getattr(message, "attachments", ()))
            elif role in ("assistant", "model"):
                widget = self.add_assistant_message(getattr(message, "model", "") or "",
                                                    getattr(message, "id", None))
                widget.set_content(getattr(message, "content", "") or "",
                                   getattr(message, "thinking", "") or "",
                                   getattr(message, "thinking_seconds", None),
                                   getattr(message, "status", "complete") or "complete",
                                   getattr(message, "stats", None) or {},
                                   getattr(message, "tool_steps", ()))
        self.update_regenerate_button()
        self.scroll_to_bottom()

    def last_assistant(self) -> AssistantMessageWidget | None:
        for widget in reversed(self._messages):
            if isinstance(widget, AssistantMessageWidget):
                return widget
        return None

    def remove_message(self, widget: QWidget) -> None:
        if widget in self._messages:
            self._messages.remove(widget)
            self._messages_layout.removeWidget(widget)
            widget.hide()
            widget.deleteLater()
        if not self._messages:
            self._stack.setCurrentWidget(self.empty_state)

    def update_regenerate_button(self, enabled: bool = True) -> None:
        """Only the last answer offers Regenerate."""
        last = self.last_assistant()
        for widget in self._messages:
            if isinstance(widget, AssistantMessageWidget):
                widget.set_regenerate_visible(enabled and widget is last
                                              and widget is self._messages[-1])

    def message_widget(self, message_id: Any) -> QWidget | None:
        return next((w for w in self._messages if getattr(w, "message_id", None) == message_id),
                    None)

    def set_branches(self, positions: dict[Any, tuple[int, int]]) -> None:
        """‹ i/n › on every message with other versions ({message id: (i, n)}), none elsewhere."""
        for widget in self._messages:
            index, count = positions.get(getattr(widget, "message_id", None), (1, 1))
            widget.set_branch(index, count)  # type: ignore[attr-defined]

    def reveal_message(self, message_id: Any, highlight: bool = True) -> QWidget | None:
        """Scroll a message into view (and stop following the bottom); briefly tint it."""
        widget = self.message_widget(message_id)
        if widget is None:
            return None
        self._follow = False
        # Heights of rendered Markdown settle over a few event-loop turns: aim again after them.
        for delay in (0, 60, 250):
            QTimer.singleShot(delay, widget, lambda w=widget: self._scroll_to(w))
        if highlight:
            widget.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
            widget.setProperty("searchHit", True)
            tint = theme.color("accent_soft")
            widget.setStyleSheet(f'*[searchHit="true"] {{ background: {tint}; border-radius: 10px; }}')
            QTimer.singleShot(HIGHLIGHT_MS, widget, lambda w=widget: _unhighlight(w))
        return widget

    def _scroll_to(self, widget: QWidget) -> None:
        self._programmatic = True
        self.scroll_area.ensureWidgetVisible(widget, 0, 48)
        self._programmatic = False

    def scroll_to_bottom(self) -> None:
        self._follow = True
        bar = self.scroll_area.verticalScrollBar()
        self._programmatic = True
        bar.setValue(bar.maximum())
        self._programmatic = False

    def refresh_icons(self) -> None:
        self.empty_state.refresh_icons()
        for widget in self._messages:
            widget.refresh_icons()  # type: ignore[attr-defined]

    # ---- internals --------------------------------------------------------------------------

    def _append(self, widget: QWidget) -> None:
        self._messages_layout.insertWidget(self._messages_layout.count() - 1, widget)
        self._messages.append(widget)
        self._stack.setCurrentWidget(self.scroll_area)
        self._follow = True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (watched is self.column and event.type() == QEvent.Type.LayoutRequest
                and not self._tab_timer.isActive()):
            self._tab_timer.start()
        return super().eventFilter(watched, event)

    def _on_tab_timer_timeout(self) -> None:
        shortcuts.chain_in_visual_order(self.column, self.scroll_area)

    def _bubble_width(self) -> int:
        column = min(max(self.width() - 60, 300), COLUMN_MAX_WIDTH)
        return max(240, int(column * 0.78))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        width = self._bubble_width()
        for widget in self._messages:
            if isinstance(widget, UserMessageWidget):
                widget.set_max_bubble_width(width)

    def _on_scrollbar_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._follow:
            self._programmatic = True
            self.scroll_area.verticalScrollBar().setValue(maximum)
            self._programmatic = False

    def _on_scrollbar_value_changed(self, value: int) -> None:
        if self._programmatic:
            return
        bar = self.scroll_area.verticalScrollBar()
        self._follow = value >= bar.maximum() - FOLLOW_SLACK_PX


def _unhighlight(widget: QWidget) -> None:
    widget.setProperty("searchHit", False)
    widget.setStyleSheet("")
