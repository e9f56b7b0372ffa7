"""Light/dark theming: one QSS template filled from a palette, a matching QPalette, tinted SVG icons."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path
from string import Template

from PySide6.QtCore import QByteArray, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")
BASE_POINT_SIZE = 10.5
# DejaVu is what a bare Linux box has; the others win where installed.
UI_FONT_FAMILIES = ["Inter", "Segoe UI", "SF Pro Text", "Cantarell", "Noto Sans", "DejaVu Sans"]
MONO_FONT_FAMILIES = ["JetBrains Mono", "Cascadia Mono", "SF Mono", "Menlo", "Consolas",
                      "Noto Sans Mono", "DejaVu Sans Mono"]


def resources_dir() -> Path:
    """resources/ next to the source tree, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


@lru_cache(maxsize=4)
def palette_colors(scheme: str) -> dict[str, str]:
    """The named colours of 'light' or 'dark'."""
    path = resources_dir() / "themes" / f"{scheme}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def system_scheme() -> str:
    """'dark' when the desktop asks for dark, else 'light'."""
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication) and app.styleHints().colorScheme() == Qt.ColorScheme.Dark:
        return "dark"
    return "light"


def resolve_scheme(theme: str) -> str:
    """Map a setting ('system'|'light'|'dark') to the palette actually used."""
    return system_scheme() if theme not in ("light", "dark") else theme


def build_stylesheet(scheme: str, text_scale: float = 1.0) -> str:
    """The app QSS for a palette and text scale."""
    colors = palette_colors(scheme)
    scale = max(0.7, min(2.0, float(text_scale)))
    sizes = {
        "fs_small": f"{BASE_POINT_SIZE * 0.88 * scale:.1f}",
        "fs_base": f"{BASE_POINT_SIZE * scale:.1f}",
        "fs_large": f"{BASE_POINT_SIZE * 1.15 * scale:.1f}",
        "fs_title": f"{BASE_POINT_SIZE * 1.9 * scale:.1f}",
    }
    template = Template((resources_dir() / "themes" / "style.qss").read_text(encoding="utf-8"))
    return template.substitute({**colors, **sizes})


def ui_font(scale: float = 1.0) -> QFont:
    font = QFont()
    font.setFamilies(UI_FONT_FAMILIES)
    font.setPointSizeF(BASE_POINT_SIZE * scale)
    return font


def mono_font(scale: float = 1.0) -> QFont:
    font = QFont()
    font.setFamilies(MONO_FONT_FAMILIES)
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    font.setPointSizeF(BASE_POINT_SIZE * 0.92 * scale)
    return font


def _qpalette(colors: dict[str, str]) -> QPalette:
    # QTextBrowser text, selection and links are drawn from the palette, not the QSS.
    pal = QPalette()
    c = {k: QColor(v) for k, v in colors.items()}
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        pal.setColor(group, QPalette.ColorRole.Window, c["window"])
        pal.setColor(group, QPalette.ColorRole.WindowText, c["text"])
        pal.setColor(group, QPalette.ColorRole.Base, c["window"])
        pal.setColor(group, QPalette.ColorRole.AlternateBase, c["surface"])
        pal.setColor(group, QPalette.ColorRole.Text, c["text"])
        pal.setColor(group, QPalette.ColorRole.Button, c["surface"])
        pal.setColor(group, QPalette.ColorRole.ButtonText, c["text"])
        pal.setColor(group, QPalette.ColorRole.Highlight, c["accent_soft"])
        pal.setColor(group, QPalette.ColorRole.HighlightedText, c["text"])
        pal.setColor(group, QPalette.ColorRole.Link, c["accent"])
        pal.setColor(group, QPalette.ColorRole.PlaceholderText, c["text_faint"])
        pal.setColor(group, QPalette.ColorRole.ToolTipBase, c["surface"])
        pal.setColor(group, QPalette.ColorRole.ToolTipText, c["text"])
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, c["text_faint"])
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, c["text_faint"])
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, c["text_faint"])
    return pal


class ThemeManager(QObject):
    """Applies a theme to the application and follows the desktop's light/dark switch."""

    sig_changed = Signal(str)  # the scheme now in use: 'light' or 'dark'

    def __init__(self, app: QApplication, theme: str = "system", text_scale: float = 1.0) -> None:
        super().__init__(app)
        self._app = app
        self._theme = theme if theme in THEMES else "system"
        self._scale = text_scale
        self.scheme = "light"
        app.setStyle("Fusion")  # the native style ignores parts of QSS; Fusion honours all of it
        app.styleHints().colorSchemeChanged.connect(self._on_hints_color_scheme_changed)

    @property
    def theme(self) -> str:
        return self._theme

    @property
    def text_scale(self) -> float:
        return self._scale

    def apply(self, theme: str | None = None, text_scale: float | None = None) -> None:
        """(Re)apply; None keeps the current value."""
        if theme is not None:
            self._theme = theme if theme in THEMES else "system"
        if text_scale is not None:
            self._scale = text_scale
        self.scheme = resolve_scheme(self._theme)
        colors = palette_colors(self.scheme)
        self._app.setFont(ui_font(self._scale))
        self._app.setPalette(_qpalette(colors))
        self._app.setStyleSheet(build_stylesheet(self.scheme, self._scale))
        set_icon_scheme(self.scheme)
        self.sig_changed.emit(self.scheme)

    def _on_hints_color_scheme_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self._theme == "system":
            self.apply()


# ---- icons ----------------------------------------------------------------------------------

_icon_scheme = "light"


def set_icon_scheme(scheme: str) -> None:
    global _icon_scheme
    _icon_scheme = scheme


def current_scheme() -> str:
    return _icon_scheme


def color(name: str) -> str:
    """A named colour of the palette in use."""
    return palette_colors(_icon_scheme)[name]


@lru_cache(maxsize=256)
def _svg_pixmap(name: str, hex_color: str, size: int, dpr: float) -> QPixmap:
    svg = (resources_dir() / "icons" / f"{name}.svg").read_text(encoding="utf-8")
    svg = svg.replace("currentColor", hex_color)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    px = int(round(size * dpr))
    pixmap = QPixmap(px, px)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, px, px))
    painter.end()
    pixmap.setDevicePixelRatio(dpr)
    return pixmap


def icon(name: str, color_name: str = "text_muted", size: int = 20) -> QIcon:
    """An SVG from resources/icons tinted with a palette colour (normal and disabled states)."""
    app = QGuiApplication.instance()
    dpr = app.devicePixelRatio() if isinstance(app, QGuiApplication) else 1.0
    result = QIcon()
    result.addPixmap(_svg_pixmap(name, color(color_name), size, dpr), QIcon.Mode.Normal)
    result.addPixmap(_svg_pixmap(name, color("text_faint"), size, dpr), QIcon.Mode.Disabled)
    return result


def app_icon() -> QIcon:
    """The application icon at the sizes desktop shells ask for."""
    result = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        result.addPixmap(_svg_pixmap("app", "#000000", size, 1.0))
    return result


def icon_size(size: int = 20) -> QSize:
    return QSize(size, size)
