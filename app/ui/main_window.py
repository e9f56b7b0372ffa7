"""The main window: sidebar | transcript + composer, a notice banner, menus and the status bar."""

from __future__ import annotations

import logging
import os
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME
from app.core.engine.messages import DEFAULT_N_CTX
from app.core.hardware.speed import record_answer_speed
from app.services.api_server import ApiServer, ServerPlan
from app.ui import shortcuts, theme
from app.ui.banner import NoticeBanner
from app.ui.chat_controller import NO_MODEL_MESSAGE, ChatController
from app.ui.chat_tools import close_window_tools, wire_window_tools
from app.ui.chat_view import ChatView
from app.ui.composer import ComposerWidget
from app.ui.conversation_actions import ConversationActions
from app.ui.media_controller import MediaController
from app.ui.settings_wiring import SettingsWiring
from app.ui.sidebar import SidebarPane
from app.ui.status_bar import ChatStatusBar
from app.ui.window_menus import build_menus
from app.ui.window_models import WindowModels

log = logging.getLogger(__name__)

TEXT_SCALES = (0.85, 0.93, 1.0, 1.1, 1.2, 1.35, 1.5)


class MainWindow(QMainWindow):
    """Gemma Desktop's window. Collaborators are built by app.bootstrap and passed in."""

    sig_settings_changed = Signal()  # settings object edited in place; the owner saves it
    sig_model_open_requested = Signal(str)  # a GGUF path the user picked

    def __init__(self, settings: Any, store: Any, session: Any, client: Any,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._client = client
        self.models = WindowModels(self, settings, client)
        self._loading_name = ""
        self._conversation_title = "New chat"
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        self.theme_manager = _theme_manager(app, settings)
        self.theme_manager.sig_changed.connect(self._on_theme_changed)
        self.setWindowIcon(theme.app_icon())
        self.resize(1200, 800)
        self.setMinimumSize(720, 480)

        self.sidebar = SidebarPane(self)
        self.chat_view = ChatView(self)
        self.composer = ComposerWidget(self)
        self.banner = NoticeBanner(self)
        self.status = ChatStatusBar(self)
        self.setStatusBar(self.status)

        pane = QWidget(self)
        pane.setObjectName("ChatPane")
        column = QVBoxLayout(pane)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(24, 12, 24, 0)
        self.banner.setMaximumWidth(800)
        banner_row.addWidget(self.banner)
        column.addLayout(banner_row)
        column.addWidget(self.chat_view, 1)
        column.addWidget(self.composer)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setHandleWidth(1)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(pane)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([270, 930])
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        self.controller = ChatController(settings, store, session, client, self.chat_view, self)
        # Images, audio files and the microphone (drop/paste/pick, recording, transcription).
        self.media = MediaController(settings, client, self.composer, self.banner, self.status, self)
        self.conversation_actions = ConversationActions(store, settings, self)
        self._build_menus()
        self._wire()
        # After _wire: on a failed switch the window's own load handlers run first, then the
        # switcher's (its "previous model is back" message is the one left on screen).
        self.settings_wiring = SettingsWiring(self, settings, client, history=store)
        self._wire_conversation_tools()
        self.tools = wire_window_tools(self, settings)  # MCP servers start in the background
        self.api_server = ApiServer(client, settings.models_dir, self, load=self._load_for_api)
        self._wire_api_server()
        shortcuts.label_window(self)
        shortcuts.window_tab_order(self)
        self.composer.set_thinking(bool(settings.enable_thinking))
        self.composer.set_send_with_ctrl_enter(bool(settings.send_with_ctrl_enter))
        info = client.model_info
        if info:
            self._on_client_loaded(info)
        self.controller.refresh_conversations()
        self.controller.new_conversation()
        self.composer.focus_input()

    # ---- building ---------------------------------------------------------------------------

    def _build_menus(self) -> None:
        build_menus(self)

    def _wire(self) -> None:
        c, comp, side = self.controller, self.composer, self.sidebar
        comp.sig_send_requested.connect(self._on_composer_send_requested)
        comp.sig_stop_requested.connect(c.stop)
        comp.sig_thinking_toggled.connect(self._on_composer_thinking_toggled)
        self.media.sig_settings_changed.connect(self.sig_settings_changed)
        self.media.sig_get_projector_requested.connect(self.models.get_projector)
        self.media.sig_get_audio_model_requested.connect(self.models.get_audio_model)
        side.sig_new_requested.connect(c.new_conversation)
        side.sig_selected.connect(c.open_conversation)
        side.sig_rename_requested.connect(c.rename_conversation)
        side.sig_delete_requested.connect(c.delete_conversation)
        side.sig_search_changed.connect(c.set_search)
        c.sig_conversations_changed.connect(side.set_conversations)
        c.sig_conversation_opened.connect(self._on_controller_conversation_opened)
        c.sig_busy_changed.connect(comp.set_generating)
        c.sig_generation_finished.connect(self.status.set_stats)
        c.sig_generation_finished.connect(  # the measured speed shown beside the prediction
            lambda stats: None if self._settings.remote_server  # a server's speed is not ours
            else record_answer_speed(self._settings.model_path, stats))
        c.sig_error.connect(self._on_controller_error)
        self.banner.sig_action_clicked.connect(self._on_banner_action_clicked)
        cl = self._client
        cl.sig_load_progress.connect(self._on_client_load_progress)
        cl.sig_loaded.connect(self._on_client_loaded)
        cl.sig_load_failed.connect(self._on_client_load_failed)
        cl.sig_engine_crashed.connect(self._on_client_engine_crashed)

    def _wire_conversation_tools(self) -> None:
        actions, c = self.conversation_actions, self.controller
        self.settings_action.triggered.connect(lambda: self.settings_wiring.open_dialog())
        self.import_action.triggered.connect(actions.import_)
        self.export_action.triggered.connect(lambda: actions.export(c.conversation_id))
        self.conversation_settings_action.triggered.connect(
            lambda: actions.edit_overrides(c.conversation_id))
        self.sidebar.sig_export_requested.connect(actions.export)
        self.sidebar.sig_overrides_requested.connect(actions.edit_overrides)
        actions.sig_imported.connect(self._on_conversation_actions_imported)
        actions.sig_exported.connect(
            lambda path: self.status.set_message(f"Exported to {path}"))
        actions.sig_overrides_changed.connect(
            lambda _cid: self.status.set_message("This conversation's settings were saved"))
        actions.sig_failed.connect(lambda message: self.banner.show_notice(
            "Couldn't finish that", message))

    def _wire_api_server(self) -> None:
        """The API server shares the loaded model; the status bar shows its address and requests."""
        api, status = self.api_server, self.status

        def show(*_args: Any) -> None:
            status.set_api(api.url, api.live, api.chat_waiting)

        api.sig_state_changed.connect(show)
        api.sig_requests_changed.connect(show)
        self.controller.sig_busy_changed.connect(show)
        self._client.sig_delta.connect(lambda *_a: show() if api.live else None)
        status.sig_api_clicked.connect(lambda: self.settings_wiring.open_dialog("Server"))
        api.apply(ServerPlan.from_settings(self._settings))  # at start, if it was on

    def _load_for_api(self, path: str, mmproj: str | None) -> bool:
        """An API request named another installed model; False when the window declined."""
        self.load_model(path, mmproj)
        return bool(self._client.loading or self.settings_wiring.switcher.switching)

    def _on_conversation_actions_imported(self, conversation_id: Any) -> None:
        self.controller.refresh_conversations()
        self.controller.open_conversation(conversation_id)
        self.status.set_message("Conversation imported")

    # ---- public -----------------------------------------------------------------------------

    def load_model(self, path: str, mmproj: str | None = None, n_ctx: int | None = None,
                   n_gpu_layers: int | None = None) -> None:
        """Load a GGUF in the engine (a fresh host); progress and errors show in the window.

        n_ctx / n_gpu_layers, when given (the model manager's plan), win over the settings.
        """
        self.banner.dismiss()
        self._loading_name = os.path.basename(path)
        self.status.set_loading(self._loading_name)
        self.composer.set_model_name(f"Loading {self._loading_name}…")
        if n_ctx is not None:
            self._settings.n_ctx = n_ctx
        # n_gpu_layers None is "auto" (the engine host fits it); 0 is a real choice: CPU only.
        layers = n_gpu_layers if n_gpu_layers is not None else self._settings.n_gpu_layers
        kwargs: dict[str, Any] = {"n_ctx": self._settings.n_ctx or DEFAULT_N_CTX,
                                  "n_gpu_layers": layers, "mmproj": mmproj or None,
                                  "kv_type": self._settings.kv_cache_type}
        wiring = getattr(self, "settings_wiring", None)  # built after the first load, at start
        if wiring is not None and self._client.model_info:
            # A model runs: the ModelSwitcher asks before cutting off an answer and brings this
            # model back if the new one fails to load.
            if not wiring.switcher.switch(path, **kwargs):
                self._on_client_loaded(self._client.model_info)  # declined: nothing changed
                return
        else:
            self._client.load_model(path, **kwargs)
        self._settings.model_path = path
        self._settings.mmproj_path = mmproj
        self._settings.remote_server = None  # a local model answers now, not a server
        self.sig_settings_changed.emit()

    def set_theme(self, name: str) -> None:
        self.theme_manager.apply(theme=name)
        self._settings.theme = name
        self.sig_settings_changed.emit()

    def set_text_scale(self, scale: float) -> None:
        self.theme_manager.apply(text_scale=scale)
        self._settings.text_scale = scale
        self.sig_settings_changed.emit()

    def models_context(self) -> Any:
        """The catalog, downloads and hardware probe the model manager and welcome screen share."""
        return self.models.context()

    def open_models(self) -> Any:
        """Show the model manager (non-modal; downloads go on when it is closed)."""
        return self.models.open_manager()

    def show_welcome(self, pane: QWidget) -> None:
        """Show a first-start pane in place of the chat until hide_welcome()."""
        stack = QStackedWidget(self)
        stack.addWidget(self.takeCentralWidget())
        stack.addWidget(pane)
        stack.setCurrentWidget(pane)
        self.setCentralWidget(stack)
        self.welcome = pane

    def hide_welcome(self) -> None:
        stack = self.centralWidget()
        if isinstance(stack, QStackedWidget):
            stack.setCurrentIndex(0)
            self.composer.focus_input()

    def show_crash(self, message: str) -> None:
        """The engine died: say so, keep the conversation, offer a restart."""
        summary, _, details = message.partition("\n\n")
        self.banner.show_notice(
            "The engine stopped unexpectedly",
            (summary or "The engine stopped.") + " Restart the engine to keep chatting.",
            "Restart engine", "restart", details)
        self.status.set_model("Engine stopped")
        self.composer.set_model_name("Engine stopped")

    # ---- reactions --------------------------------------------------------------------------

    def _step_text_scale(self, step: int) -> None:
        current = self.theme_manager.text_scale
        index = min(range(len(TEXT_SCALES)), key=lambda i: abs(TEXT_SCALES[i] - current))
        self.set_text_scale(TEXT_SCALES[max(0, min(len(TEXT_SCALES) - 1, index + step))])

    def _on_theme_changed(self, _scheme: str) -> None:
        for widget in self.findChildren(QWidget):
            refresh = getattr(widget, "refresh_icons", None)
            if callable(refresh):
                refresh()

    def _on_copy_last_activated(self) -> None:
        last = self.chat_view.last_assistant()
        if last is not None and last.markdown:
            QApplication.clipboard().setText(last.markdown)
            self.status.set_message("Copied the last answer")

    def _on_composer_send_requested(self, text: str) -> None:
        if not self.media.ready_to_send():
            self.composer.set_text(text)
            return
        if not self.controller.send(text, self.media.attachments()):
            self.composer.set_text(text)  # nothing is lost when sending was refused
        else:
            self.media.clear()

    def _on_composer_thinking_toggled(self, enabled: bool) -> None:
        self.controller.set_thinking_enabled(enabled)
        self.sig_settings_changed.emit()

    def _on_controller_conversation_opened(self, conversation_id: Any, title: str) -> None:
        self._conversation_title = title
        self.setWindowTitle(f"{APP_NAME} — {title}")
        self.sidebar.select(conversation_id)
        self.composer.focus_input()

    def _on_controller_error(self, message: str) -> None:
        if message == NO_MODEL_MESSAGE:
            self.banner.show_notice("No model loaded", "Open a Gemma GGUF model to start chatting.",
                                    "Open model…", "open_model")
        else:
            self.banner.show_notice("Something went wrong", message)

    def _on_banner_action_clicked(self, key: str) -> None:
        if key == "restart":
            self.banner.dismiss()
            self._loading_name = self._loading_name or "model"
            self.status.set_loading(self._loading_name)
            self._client.restart()
        elif key == "open_model":
            self._on_open_model_triggered()

    def _on_open_model_triggered(self) -> None:
        start = str(self._settings.model_path or "")
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a GGUF model", os.path.dirname(start), "GGUF models (*.gguf);;All files (*)")
        if path:
            self.sig_model_open_requested.emit(path)
            self.load_model(path)

    def _on_client_load_progress(self, fraction: float) -> None:
        self.status.set_loading(self._loading_name, fraction)

    def _on_client_loaded(self, info: dict[str, Any]) -> None:
        name = str(info.get("name") or os.path.basename(str(info.get("path", ""))) or "model")
        self._loading_name = name
        self.banner.dismiss() if self.banner.action_key in ("restart", "open_model") else None
        self.controller.set_model_name(name)
        self.composer.set_model_name(name)
        self.status.set_model(name, info.get("n_ctx"))
        remote = getattr(self._client, "remote", None)  # the chat runs on a server
        host = remote.host if remote is not None else None
        self.composer.set_runs_on(host)
        self.chat_view.empty_state.set_runs_on(host)
        notes = []
        if not info.get("has_template", True):
            notes.append("No chat template in this model: using a plain-text prompt")
        self.status.set_message(" · ".join(notes))

    def _on_client_load_failed(self, message: str) -> None:
        self.status.set_model("No model loaded")
        self.composer.set_model_name("No model")
        self.banner.show_notice("Couldn't open this model", message, "Open another model…",
                                "open_model")

    def _on_client_engine_crashed(self, message: str) -> None:
        self.show_crash(message)

    def _on_about_triggered(self) -> None:
        from app.ui.about_dialog import AboutDialog

        AboutDialog(self).exec()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.controller.stop()
        self.media.shutdown()
        self.api_server.shutdown()
        self.settings_wiring.shutdown()
        close_window_tools(self.tools)
        self.conversation_actions.wait()
        self.models.shutdown()
        super().closeEvent(event)


_MANAGERS: dict[int, theme.ThemeManager] = {}


def _theme_manager(app: QApplication, settings: Any) -> theme.ThemeManager:
    # One per application: several windows (and tests) share it.
    name = str(settings.theme or "system")
    scale = float(settings.text_scale or 1.0)
    manager = _MANAGERS.get(id(app))
    if manager is None:
        manager = theme.ThemeManager(app, name, scale)
        _MANAGERS[id(app)] = manager
        manager.apply()
    else:
        manager.apply(theme=name, text_scale=scale)  # this window's settings, not the last one's
    return manager
