"""The collapsible block that shows the model's thinking above its answer."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.core.media.durations import spoken
from app.ui import theme
from app.ui.markdown_view import TextView


class ThinkingBlock(QWidget):
    """'Thinking… 3 s' while thoughts stream (expanded), 'Thought for 12 s' after (collapsed).

    The header text changes only when the shown second changes and the thoughts are appended,
    never re-set, so the block does not flicker while it streams.
    """

    sig_toggled = Signal(bool)  # expanded

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ThinkingBlock")
        self._text = ""
        self._streaming = False
        self._started_at = 0.0
        self._seconds: float | None = None
        self._user_toggled = False
        self._expanded = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.header = QToolButton(self)
        self.header.setObjectName("ThinkingHeader")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setIconSize(theme.icon_size(16))
        self.header.setCursor(Qt.CursorShape.PointingHandCursor)
        self.header.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.header.clicked.connect(self._on_header_clicked)
        layout.addWidget(self.header, 0, Qt.AlignmentFlag.AlignLeft)

        self.body = QFrame(self)
        self.body.setObjectName("ThinkingBody")
        body_layout = QVBoxLayout(self.body)
        body_layout.setContentsMargins(14, 2, 0, 2)
        self.text_view = TextView("ThinkingText", parent=self.body)
        body_layout.addWidget(self.text_view)
        layout.addWidget(self.body)
        self.body.setVisible(False)

        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._on_tick_timeout)
        self._shown_label = ""
        self._update_header()
        self._update_icon()

    # ---- state ------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def expanded(self) -> bool:
        return self._expanded

    @property
    def seconds(self) -> float | None:
        """How long the model thought (None while it still thinks or if it never did)."""
        return self._seconds

    def header_text(self) -> str:
        return self.header.text()

    def start(self) -> None:
        """Thoughts begin to stream: expanded, live elapsed seconds."""
        if self._streaming:
            return
        self._streaming = True
        self._started_at = time.monotonic()
        self._seconds = None
        self._tick.start()
        if not self._user_toggled:
            self.set_expanded(True)
        self._update_header()

    def append(self, text: str) -> None:
        if not self._streaming and self._seconds is None:
            self.start()
        if not self._text:
            text = text.lstrip("\n")
        self._text += text
        self.text_view.append_plain(text)

    def finish(self, seconds: float | None = None) -> None:
        """Thoughts are over (the answer started, or the turn ended): collapse unless the user chose."""
        if not self._streaming:
            return
        self._streaming = False
        self._tick.stop()
        self._seconds = seconds if seconds is not None else time.monotonic() - self._started_at
        trimmed = self._text.rstrip()
        if trimmed != self._text:
            self._text = trimmed
            self.text_view.setPlainText(trimmed)
        if not self._user_toggled:
            self.set_expanded(False)
        self._update_header()

    def set_static(self, text: str, seconds: float | None) -> None:
        """A stored message: finished thoughts, collapsed."""
        self._streaming = False
        self._tick.stop()
        self._text = text.strip()
        self._seconds = seconds
        self.text_view.setPlainText(self._text)
        self.set_expanded(False)
        self._update_header()

    def set_expanded(self, expanded: bool) -> None:
        if expanded == self._expanded and self.body.isVisible() == expanded:
            return
        self._expanded = expanded
        self.body.setVisible(expanded)
        self._update_icon()
        self.sig_toggled.emit(expanded)

    # ---- painting ---------------------------------------------------------------------------

    def refresh_icons(self) -> None:
        self._update_icon()

    def _update_icon(self) -> None:
        name = "chevron_down" if self._expanded else "chevron_right"
        self.header.setIcon(theme.icon(name, "text_muted", 16))

    def _label(self) -> str:
        if self._streaming:
            elapsed = time.monotonic() - self._started_at
            return f"Thinking… {int(elapsed)} s" if elapsed >= 1 else "Thinking…"
        if self._seconds is not None:
            return f"Thought for {spoken(self._seconds)}"
        return "Thoughts"

    def _update_header(self) -> None:
        label = self._label()
        if label != self._shown_label:
            self._shown_label = label
            self.header.setText(label)
            self.header.setAccessibleName(f"{label}. Click to show or hide the model's thinking")

    def _on_tick_timeout(self) -> None:
        self._update_header()

    def _on_header_clicked(self) -> None:
        self._user_toggled = True
        self.set_expanded(not self._expanded)
