"""Appearance page: light, dark or the system's choice; text size; the send key."""

from __future__ import annotations

from PySide6.QtWidgets import QButtonGroup, QCheckBox, QComboBox, QHBoxLayout, QRadioButton, QWidget

from app.core.storage.settings import Settings
from app.ui.settings_pages.common import SettingsPage, form, hint, page_layout, section

TEXT_SIZES = ((0.85, "Small"), (0.93, "Smaller"), (1.0, "Normal"), (1.1, "Larger"),
              (1.2, "Large"), (1.35, "Very large"), (1.5, "Huge"))
THEME_LABELS = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class AppearancePage(SettingsPage):
    """How the window looks."""

    title = "Appearance"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = page_layout(self, "Appearance")
        section(layout, "THEME")
        rows = form(layout)
        theme_row = QHBoxLayout()
        theme_row.setSpacing(22)
        self.theme_group = QButtonGroup(self)
        self.theme_buttons: dict[str, QRadioButton] = {}
        for key, label in THEME_LABELS:
            button = QRadioButton(label)
            button.setAccessibleName(f"Theme: {label}")
            self.theme_group.addButton(button)
            self.theme_buttons[key] = button
            theme_row.addWidget(button)
        theme_row.addStretch(1)
        rows.addRow("Colours", theme_row)

        section(layout, "TEXT")
        rows2 = form(layout)
        self.text_size = QComboBox()
        self.text_size.setAccessibleName("Text size")
        for scale, label in TEXT_SIZES:
            self.text_size.addItem(f"{label} ({scale:.0%})", scale)
        rows2.addRow("Text size", self.text_size)
        rows2.addRow(hint("Ctrl+Plus and Ctrl+Minus change it from the chat window too."))

        section(layout, "KEYBOARD")
        rows3 = form(layout)
        self.ctrl_enter = QCheckBox("Send with Ctrl+Enter (Enter starts a new line)")
        self.ctrl_enter.setAccessibleName("Send with Ctrl+Enter")
        rows3.addRow(self.ctrl_enter)
        layout.addStretch(1)

    def load(self, settings: Settings) -> None:
        self.theme_buttons.get(settings.theme, self.theme_buttons["system"]).setChecked(True)
        nearest = min(range(len(TEXT_SIZES)),
                      key=lambda i: abs(TEXT_SIZES[i][0] - settings.text_scale))
        if abs(TEXT_SIZES[nearest][0] - settings.text_scale) > 1e-6:
            # A size set elsewhere (an older file, say) stays as it is rather than snapping.
            self.text_size.addItem(f"Custom ({settings.text_scale:.0%})", settings.text_scale)
            self.text_size.setCurrentIndex(self.text_size.count() - 1)
        else:
            self.text_size.setCurrentIndex(nearest)
        self.ctrl_enter.setChecked(settings.send_with_ctrl_enter)

    def store(self, settings: Settings) -> None:
        settings.theme = next(k for k, b in self.theme_buttons.items() if b.isChecked())
        settings.text_scale = float(self.text_size.currentData())
        settings.send_with_ctrl_enter = self.ctrl_enter.isChecked()

    def focus_chain(self) -> list[QWidget]:
        return [*self.theme_buttons.values(), self.text_size, self.ctrl_enter]
