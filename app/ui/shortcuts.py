"""Keyboard map, focus order and accessible names of the main window.

One table says which key does what (menus show the same keys), so the Help overview, the menus
and the tests agree. The focus order follows the layout: sidebar top to bottom, the transcript,
then the composer left to right.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QLabel,
    QLineEdit,
    QWidget,
)

# action -> (key, what it does); "send" depends on the setting (Enter or Ctrl+Enter).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "new_chat": ("Ctrl+N", "New chat"),
    "search": ("Ctrl+K", "Search all conversations"),
    "copy_last": ("Ctrl+Shift+C", "Copy the last answer (Markdown)"),
    "stop": ("Esc", "Stop the answer being written"),
    "settings": ("Ctrl+,", "Settings"),
    "send": ("Enter", "Send (Ctrl+Enter when set in Settings → Appearance)"),
    "newline": ("Shift+Enter", "New line in the message"),
    "export": ("Ctrl+Shift+E", "Export the conversation"),
    "import": ("Ctrl+Shift+O", "Import a conversation"),
    "conversation_settings": ("Ctrl+Shift+,", "Settings of this conversation"),
    "open_model": ("Ctrl+O", "Open a model file"),
    "sidebar": ("Ctrl+B", "Show or hide the sidebar"),
    "rename": ("F2", "Rename the selected conversation"),
    "delete": ("Del", "Delete the selected conversation"),
}

TEXT_VIEW_NAMES = {"MessageText": "Answer text", "CodeText": "Code", "ThinkingText": "Thinking text"}


def key(action: str) -> QKeySequence:
    return QKeySequence(SHORTCUTS[action][0])


def overview_html() -> str:
    """The shortcuts as a small table (Help → Keyboard shortcuts)."""
    rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{what}</td></tr>"
                   for k, what in SHORTCUTS.values())
    return f"<table>{rows}</table>"


def focusable_widgets(root: QWidget) -> list[QWidget]:
    """Visible, enabled widgets under root that Tab reaches, in the order Tab visits them."""
    ordered: list[QWidget] = []
    steps = len(root.findChildren(QWidget)) + 2
    current = root.nextInFocusChain()
    # Follow the real focus chain (what the keyboard does) once round, back to the window.
    while current is not None and current is not root and steps > 0:
        if _tab_reachable(current) and root.isAncestorOf(current):
            ordered.append(current)
        current = current.nextInFocusChain()
        steps -= 1
    return ordered


def chain_in_visual_order(container: QWidget, anchor: QWidget) -> None:
    """Put container's focusable descendants right after anchor, top to bottom, left to right.

    Widgets created later (a new message, a code block's Copy) would otherwise land at the end
    of the window's chain, after the composer.
    """
    widgets = [w for w in container.findChildren(QWidget)
               if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.isVisibleTo(container)]
    for widget in widgets:
        # Rendered text takes focus (keyboard selection, links): say what it is.
        if not widget.accessibleName() and widget.objectName() in TEXT_VIEW_NAMES:
            widget.setAccessibleName(TEXT_VIEW_NAMES[widget.objectName()])
    widgets.sort(key=lambda w: (w.mapTo(container, w.rect().bottomLeft()).y(),
                                w.mapTo(container, w.rect().topLeft()).x()))
    set_tab_order([anchor, *widgets])


def spoken_name(widget: QWidget) -> str:
    """What a screen reader announces: the accessible name, else the visible text."""
    name = widget.accessibleName().strip()
    if name:
        return name
    if isinstance(widget, QAbstractButton | QLabel | QLineEdit):
        text = widget.text().replace("&", "").strip()
        if text:
            return text
    return ""


def unnamed(widgets: Iterable[QWidget]) -> list[QWidget]:
    return [w for w in widgets if not spoken_name(w)]


def set_tab_order(chain: Iterable[QWidget | None]) -> None:
    """Chain widgets in this order (None and hidden-for-good entries are skipped)."""
    present = [w for w in chain if w is not None]
    for first, second in zip(present, present[1:], strict=False):
        QWidget.setTabOrder(first, second)


def label_window(window: QWidget) -> None:
    """Names for the window's own containers that have no text of their own."""
    names = {
        "sidebar": "Conversations sidebar",
        "chat_view": "Conversation",
        "composer": "Message composer",
        "banner": "Notice",
        "status": "Status",
    }
    for attribute, name in names.items():
        widget = getattr(window, attribute, None)
        if isinstance(widget, QWidget) and not widget.accessibleName():
            widget.setAccessibleName(name)
    chat_view = getattr(window, "chat_view", None)
    scroll = getattr(chat_view, "scroll_area", None)
    if isinstance(scroll, QAbstractScrollArea):
        scroll.setAccessibleName("Messages")
        # The transcript takes focus so the keyboard can scroll it (arrows, Page Up/Down).
        scroll.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


def window_tab_order(window: QWidget) -> None:
    """Sidebar (new, search, list) → banner → transcript → composer (text, tools, send)."""
    sidebar = getattr(window, "sidebar", None)
    composer = getattr(window, "composer", None)
    banner = getattr(window, "banner", None)
    chat_view = getattr(window, "chat_view", None)
    set_tab_order([
        getattr(sidebar, "new_button", None), getattr(sidebar, "search_box", None),
        getattr(sidebar, "list", None),
        getattr(banner, "action_button", None), getattr(banner, "close_button", None),
        getattr(chat_view, "scroll_area", None),
        getattr(composer, "input", None), getattr(composer, "attach_button", None),
        getattr(composer, "mic_button", None), getattr(composer, "thinking_toggle", None),
        getattr(composer, "send_button", None),
    ])


def _tab_reachable(widget: QWidget) -> bool:
    if not widget.isVisibleTo(widget.window()) or not widget.isEnabled():
        return False
    return bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus)

