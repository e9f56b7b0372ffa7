"""An in-window notice above the transcript (engine crashed, model failed to load) with one action."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme


class NoticeBanner(QFrame):
    """Title, a sentence saying what to do, an action button and a close button."""

    sig_action_clicked = Signal(str)  # the action key given to show()
    sig_closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        self._action_key = ""
        self._details = ""
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 12, 10, 12)
        row.setSpacing(12)
        self.icon_label = QLabel(self)
        self.icon_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.icon_label, 0, Qt.AlignmentFlag.AlignTop)

        texts = QVBoxLayout()
        texts.setSpacing(2)
        self.title_label = QLabel(self)
        self.title_label.setObjectName("BannerTitle")
        texts.addWidget(self.title_label)
        self.text_label = QLabel(self)
        self.text_label.setObjectName("BannerText")
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        texts.addWidget(self.text_label)
        row.addLayout(texts, 1)

        self.action_button = QPushButton(self)
        self.action_button.setObjectName("BannerAction")
        self.action_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.action_button.clicked.connect(self._on_action_button_clicked)
        row.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignVCenter)

        self.close_button = QToolButton(self)
        self.close_button.setObjectName("BannerClose")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAccessibleName("Dismiss notice")
        self.close_button.setIconSize(theme.icon_size(16))
        self.close_button.clicked.connect(self._on_close_button_clicked)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.refresh_icons()
        self.setVisible(False)

    @property
    def action_key(self) -> str:
        return self._action_key

    @property
    def details(self) -> str:
        return self._details

    def show_notice(self, title: str, text: str, action_text: str = "", action_key: str = "",
                    details: str = "") -> None:
        """Show (or replace) the notice; details (e.g. the engine's last log lines) go in the tooltip."""
        self._action_key = action_key
        self._details = details
        self.title_label.setText(title)
        self.text_label.setText(text)
        self.text_label.setToolTip(details[-2000:] if details else "")
        self.action_button.setText(action_text)
        self.action_button.setVisible(bool(action_text))
        self.setAccessibleName(f"{title}. {text}")
        self.setVisible(True)

    def dismiss(self) -> None:
        self.setVisible(False)

    def refresh_icons(self) -> None:
        self.icon_label.setPixmap(theme.icon("warning", "danger", 22).pixmap(22, 22))
        self.close_button.setIcon(theme.icon("close", "text_muted", 16))

    def _on_action_button_clicked(self) -> None:
        self.sig_action_clicked.emit(self._action_key)

    def _on_close_button_clicked(self) -> None:
        self.dismiss()
        self.sig_closed.emit()
