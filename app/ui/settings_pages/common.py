"""Pieces every settings page uses: the page base class, section headings, form rows, sizes, QSS."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.core.storage.settings import Settings
from app.ui import theme


class SettingsPage(QWidget):
    """One page of the dialog: shows a Settings copy and writes its controls back into one."""

    title = ""

    def load(self, settings: Settings) -> None:
        """Show `settings` in the controls (called on open and after Cancel)."""
        raise NotImplementedError

    def store(self, settings: Settings) -> None:
        """Write the controls' values into `settings` (the dialog's working copy)."""
        raise NotImplementedError

    def focus_chain(self) -> list[QWidget]:
        """The page's controls in reading order; the dialog turns it into the tab order."""
        return []

    def shutdown(self) -> None:
        """Stop any background work the page started (the dialog is closing for good)."""


def page_layout(page: QWidget, title: str, subtitle: str = "") -> QVBoxLayout:
    """A page with a title and an optional one-line explanation; returns the layout to fill."""
    layout = QVBoxLayout(page)
    layout.setContentsMargins(28, 22, 28, 18)
    layout.setSpacing(10)
    heading = QLabel(title, page)
    heading.setObjectName("SettingsPageTitle")
    layout.addWidget(heading)
    if subtitle:
        hint = QLabel(subtitle, page)
        hint.setObjectName("SettingsHint")
        hint.setWordWrap(True)
        layout.addWidget(hint)
    return layout


def section(layout: QVBoxLayout, text: str) -> QLabel:
    """A small heading between groups of controls."""
    label = QLabel(text)
    label.setObjectName("SettingsSection")
    layout.addSpacing(6)
    layout.addWidget(label)
    return label


def form(layout: QVBoxLayout) -> QFormLayout:
    """A label/control form that lines up like the platform's settings apps."""
    frame = QFrame()
    frame.setObjectName("SettingsCard")
    rows = QFormLayout(frame)
    rows.setContentsMargins(14, 12, 14, 12)
    rows.setHorizontalSpacing(18)
    rows.setVerticalSpacing(10)
    rows.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    rows.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
    layout.addWidget(frame)
    return rows


def hint(text: str, parent: QWidget | None = None) -> QLabel:
    label = QLabel(text, parent)
    label.setObjectName("SettingsHint")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def human_size(n: int | float) -> str:
    """Bytes as people read them (1 decimal above a megabyte)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit in ("bytes", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def current_scheme() -> str:
    """'dark' or 'light', read from the palette the theme manager applied."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return "dark" if app.palette().window().color().lightness() < 128 else "light"
    return "light"


_QSS = """
#SettingsDialog { background: $window; }
#SettingsNav {
    background: $sidebar; border: none; border-right: 1px solid $border; outline: none;
    padding: 10px 8px;
}
#SettingsNav::item { padding: 8px 12px; border-radius: 8px; margin: 1px 0; color: $text; }
#SettingsNav::item:hover { background: $hover; }
#SettingsNav::item:selected { background: $selected; color: $text; font-weight: 600; }
#SettingsPageTitle { font-size: ${fs_title}pt; font-weight: 600; }
#SettingsSection { color: $text_muted; font-weight: 600; font-size: ${fs_small}pt; }
#SettingsHint { color: $text_muted; font-size: ${fs_small}pt; }
#SettingsError { color: $danger; font-size: ${fs_small}pt; }
#SettingsOk { color: $accent; font-size: ${fs_small}pt; }
#SettingsCard { background: $surface; border: 1px solid $border; border-radius: 10px; }
#SettingsCard QLabel { background: transparent; }
#SettingsButtons { border-top: 1px solid $border; background: $window; }
#SettingsDialog QLineEdit, #SettingsDialog QPlainTextEdit {
    background: $input_bg; border: 1px solid $border_strong; border-radius: 6px; padding: 4px 6px;
    selection-background-color: $accent_soft; selection-color: $text;
}
#SettingsDialog QLineEdit:focus, #SettingsDialog QPlainTextEdit:focus { border-color: $accent; }
#SettingsScroll, #SettingsScroll > QWidget > QWidget { background: $window; border: none; }
#SettingsDialog QLineEdit:read-only { background: $surface; color: $text_muted; }
#SettingsDialog QPushButton {
    background: $window; border: 1px solid $border_strong; border-radius: 7px; padding: 5px 14px;
}
#SettingsDialog QPushButton:hover { background: $hover; }
#SettingsDialog QPushButton:focus { border-color: $accent; }
#SettingsDialog QPushButton#SettingsPrimary {
    background: $accent; color: $accent_text; border-color: $accent; font-weight: 600;
}
#SettingsDialog QPushButton#SettingsPrimary:hover { background: $accent_hover; }
#SettingsDialog QPushButton:disabled { color: $text_faint; }
#ModelList, #DiskList {
    background: $input_bg; border: 1px solid $border; border-radius: 10px; outline: none; padding: 4px;
}
#ModelList::item { padding: 7px 10px; border-radius: 7px; margin: 1px 0; }
#ModelList::item:hover { background: $hover; }
#ModelList::item:selected { background: $accent_soft; color: $text; }
#DiskList::item { padding: 3px 4px; }
#DiskList QHeaderView::section {
    background: $surface; color: $text_muted; border: none; border-bottom: 1px solid $border;
    padding: 4px 6px; font-size: ${fs_small}pt;
}
#SettingsDialog QCheckBox::indicator, #SettingsDialog QRadioButton::indicator {
    width: 15px; height: 15px; border: 1px solid $text_faint; background: $input_bg;
}
#SettingsDialog QCheckBox::indicator { border-radius: 4px; }
#SettingsDialog QRadioButton::indicator { border-radius: 8px; }
#SettingsDialog QCheckBox::indicator:checked {
    background: $accent; border-color: $accent; image: url("$check_icon");
}
#SettingsDialog QRadioButton::indicator:checked {
    background: $accent_text; border: 5px solid $accent; width: 7px; height: 7px;
}
#SettingsDialog QCheckBox::indicator:focus, #SettingsDialog QRadioButton::indicator:focus {
    border-color: $accent;
}
#SwitchProgress { background: $border; border: none; border-radius: 3px; max-height: 6px; }
#SwitchProgress::chunk { background: $accent; border-radius: 3px; }
"""


def dialog_stylesheet(scheme: str | None = None, text_scale: float = 1.0) -> str:
    """The dialog's own QSS, from the same palettes as the app's (style.qss has no dialog rules)."""
    from string import Template

    colors = theme.palette_colors(scheme or current_scheme())
    base = theme.BASE_POINT_SIZE * max(0.7, min(2.0, text_scale))
    sizes = {"fs_small": f"{base * 0.9:.1f}", "fs_title": f"{base * 1.55:.1f}"}
    icons = {"check_icon": _check_icon(colors["accent_text"])}
    return Template(_QSS).substitute({**colors, **sizes, **icons})


def _check_icon(color: str) -> str:
    """A tick in `color` as an SVG file (QSS images are files; the shipped icon is currentColor)."""
    from app.core import paths

    path = paths.cache_dir() / f"settings-check-{color.lstrip('#')}.svg"
    if not path.exists():
        path.write_text(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
            f'stroke="{color}" stroke-width="3" stroke-linecap="round" stroke-linejoin="round">'
            '<path d="m5 12.5 4.5 4.5L19 7.5"/></svg>', "utf-8")
    return path.as_posix()
