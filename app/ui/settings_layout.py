"""The settings dialog's frame: page list, scrolling page stack, notice line and button bar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.ui.settings_pages.common import SettingsPage


@dataclass
class SettingsFrame:
    """The widgets of the frame the dialog talks to after building it."""

    nav: QListWidget
    stack: QStackedWidget
    notice: QLabel
    buttons: QDialogButtonBox
    ok_button: QPushButton
    apply_button: QPushButton
    cancel_button: QPushButton


def build_frame(dialog: QWidget, pages: Sequence[SettingsPage], notice: str | None) -> SettingsFrame:
    """Lay the pages out in `dialog` with their list, the notice line and OK/Apply/Cancel."""
    outer = QVBoxLayout(dialog)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.setSpacing(0)
    body = QHBoxLayout()
    body.setSpacing(0)
    nav = QListWidget()
    nav.setObjectName("SettingsNav")
    nav.setAccessibleName("Settings pages")
    nav.setFixedWidth(190)
    stack = QStackedWidget()
    for page in pages:
        nav.addItem(page.title)
        # Each page scrolls on its own, so a large text size never clips a control.
        scroll = QScrollArea()
        scroll.setObjectName("SettingsScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(page)
        stack.addWidget(scroll)
    body.addWidget(nav)
    right = QVBoxLayout()
    right.setContentsMargins(0, 0, 0, 0)
    label = QLabel(notice or "")
    label.setObjectName("SettingsError")
    label.setWordWrap(True)
    label.setContentsMargins(28, 14, 28, 0)
    label.setAccessibleName("Settings notice")
    label.setVisible(bool(notice))
    right.addWidget(label)
    right.addWidget(stack, 1)
    body.addLayout(right, 1)
    outer.addLayout(body, 1)
    bar = QFrame()
    bar.setObjectName("SettingsButtons")
    bar_layout = QHBoxLayout(bar)
    bar_layout.setContentsMargins(16, 10, 16, 10)
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Apply
        | QDialogButtonBox.StandardButton.Cancel)
    ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
    apply_button = buttons.button(QDialogButtonBox.StandardButton.Apply)
    cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
    for button, name in ((ok_button, "OK: apply and close"),
                         (apply_button, "Apply"), (cancel_button, "Cancel")):
        button.setAccessibleName(name)
    ok_button.setDefault(True)
    ok_button.setObjectName("SettingsPrimary")
    bar_layout.addWidget(buttons)
    outer.addWidget(bar)
    nav.currentRowChanged.connect(stack.setCurrentIndex)
    nav.setCurrentRow(0)
    chain: list[QWidget] = [nav]
    for page in pages:
        chain.extend(page.focus_chain())
    chain.extend([ok_button, apply_button, cancel_button])
    for first, second in zip(chain, chain[1:], strict=False):
        QWidget.setTabOrder(first, second)
    return SettingsFrame(nav, stack, label, buttons, ok_button, apply_button, cancel_button)
