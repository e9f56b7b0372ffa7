"""The main window's menus, toolbar and window-wide shortcuts."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import QMessageBox

from app.ui import shortcuts, theme


def build_menus(window: Any) -> None:
    """File, View and Help menus, the Models toolbar button, Esc (stop) and copy-last."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    window.new_chat_action = file_menu.addAction("New chat", QKeySequence.StandardKey.New)
    window.new_chat_action.triggered.connect(window.controller.new_conversation)
    window.open_model_action = file_menu.addAction("Open model…", QKeySequence.StandardKey.Open)
    window.open_model_action.triggered.connect(window._on_open_model_triggered)
    window.models_action = file_menu.addAction(theme.icon("model"), "Models…", QKeySequence("Ctrl+M"))
    window.models_action.triggered.connect(window.open_models)
    toolbar = window.addToolBar("Models")
    toolbar.setObjectName("MainToolBar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addAction(window.models_action)
    file_menu.addSeparator()
    window.import_action = file_menu.addAction("Import conversation…", shortcuts.key("import"))
    window.export_action = file_menu.addAction("Export conversation…", shortcuts.key("export"))
    window.conversation_settings_action = file_menu.addAction(
        "Conversation settings…", shortcuts.key("conversation_settings"))
    file_menu.addSeparator()
    window.settings_action = file_menu.addAction("Settings…", shortcuts.key("settings"))
    window.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
    file_menu.addSeparator()
    quit_action = file_menu.addAction("Quit", QKeySequence.StandardKey.Quit)
    quit_action.triggered.connect(window.close)

    view_menu = bar.addMenu("&View")
    theme_menu = view_menu.addMenu("Theme")
    group = QActionGroup(window)
    window.theme_actions: dict[str, QAction] = {}
    for key, label in (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")):
        action = theme_menu.addAction(label)
        action.setCheckable(True)
        action.setChecked(window.theme_manager.theme == key)
        action.triggered.connect(lambda _=False, k=key: window.set_theme(k))
        group.addAction(action)
        window.theme_actions[key] = action
    view_menu.addAction("Larger text", QKeySequence.StandardKey.ZoomIn).triggered.connect(
        lambda: window._step_text_scale(+1))
    view_menu.addAction("Smaller text", QKeySequence.StandardKey.ZoomOut).triggered.connect(
        lambda: window._step_text_scale(-1))
    view_menu.addAction("Actual size", QKeySequence("Ctrl+0")).triggered.connect(
        lambda: window.set_text_scale(1.0))
    view_menu.addSeparator()
    toggle = view_menu.addAction("Show sidebar", QKeySequence("Ctrl+B"))
    toggle.setCheckable(True)
    toggle.setChecked(True)
    toggle.toggled.connect(window.sidebar.setVisible)
    view_menu.addAction("Search chats", QKeySequence("Ctrl+K")).triggered.connect(
        window.sidebar.focus_search)

    help_menu = bar.addMenu("&Help")
    help_menu.addAction("Keyboard shortcuts").triggered.connect(
        lambda: QMessageBox.information(window, "Keyboard shortcuts", shortcuts.overview_html()))
    help_menu.addAction("About Gemma Desktop").triggered.connect(window._on_about_triggered)

    stop = QShortcut(QKeySequence(Qt.Key.Key_Escape), window)
    stop.activated.connect(window.controller.stop)
    stop.activated.connect(window.media.cancel_recording)
    copy_last = QShortcut(QKeySequence("Ctrl+Shift+C"), window)
    copy_last.activated.connect(window._on_copy_last_activated)
