"""The settings dialog in the window: open it (Ctrl+,), and make what it applies take effect live.

The dialog saves the settings itself and announces a copy with sig_applied; this copies the
values into the window's one Settings object (the controller reads sampling values, system
prompt and thinking from it for the next message), re-themes, and tells the composer about the
send key. A changed model goes through the ModelSwitcher, whose progress shows in the status
bar; if the new model fails, the previous one comes back and the banner says why.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from app.services.api_server import ServerPlan
from app.services.model_switcher import ModelSwitcher
from app.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)


def default_model_store(settings: Any) -> Any:
    """The installed-models store the Model page lists (None if it cannot be opened)."""
    try:
        from app.core.download.store import ModelStore

        root = settings.models_dir
        return ModelStore(Path(root) if root else None)
    except Exception:  # noqa: BLE001 - the dialog still works with just the current model
        log.exception("could not open the models folder")
        return None


def use_folder(kind: str, folder: str | None) -> None:
    """Point app.core.paths at a chosen models/data folder for this process (start-up and moves).

    paths reads GEMMA_DESKTOP_<KIND>_DIR first, so every part (history, attachments, downloads)
    follows without being told.
    """
    if folder:
        os.environ[f"GEMMA_DESKTOP_{kind.upper()}_DIR"] = str(folder)


def reopen_history(store: Any, db_path: Path) -> None:
    """Open the history at its new place in the same HistoryStore object.

    The controller, session and export actions all hold this one object; re-running its
    constructor swaps the connection under all of them at once.
    """
    type(store).__init__(store, db_path)


class SettingsWiring(QObject):
    """Owns the ModelSwitcher and the open SettingsDialog of one window."""

    sig_applied = Signal(object)  # the window's Settings, after the dialog's values took effect

    def __init__(self, window: Any, settings: Any, client: Any,
                 model_store: Any = None, machine: Any = None, history: Any = None) -> None:
        super().__init__(window)
        self._window = window
        self._history = history  # the HistoryStore, closed and reopened when the data folder moves
        self._settings = settings
        self._client = client
        self._model_store = model_store
        self.machine = machine
        self.dialog: SettingsDialog | None = None
        self.switcher = ModelSwitcher(client, confirm=self._confirm_stop, parent=self)
        self.switcher.sig_started.connect(self._on_switcher_started)
        self.switcher.sig_progress.connect(self._on_switcher_progress)
        self.switcher.sig_switched.connect(self._on_switcher_switched)
        self.switcher.sig_failed.connect(self._on_switcher_failed)
        self._switch_name = ""

    def open_dialog(self, page: str | None = None) -> SettingsDialog:
        """Show the settings (window-modal, not blocking); an open one is raised instead."""
        if self.dialog is None:
            store = self._model_store if self._model_store is not None else default_model_store(
                self._settings)
            info = self._client.model_info or {}
            dialog = SettingsDialog(self._settings.copy(), switcher=self.switcher, store=store,
                                    machine=self.machine, active_model=info.get("path"),
                                    server=getattr(self._window, "api_server", None),
                                    parent=self._window)
            dialog.sig_applied.connect(self._on_dialog_applied)
            dialog.sig_folder_moving.connect(self._on_dialog_folder_moving)
            dialog.sig_folder_moved.connect(self._on_dialog_folder_moved)
            dialog.finished.connect(self._on_dialog_finished)
            self.dialog = dialog
            dialog.open()
        if page:
            self.dialog.show_page(page)
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def apply(self, new: Any) -> None:
        """Make settings take effect now (what the dialog's Apply ends in)."""
        window, live = self._window, self._settings
        if dataclasses.is_dataclass(live) and dataclasses.is_dataclass(new):
            for field in dataclasses.fields(live):
                value = getattr(new, field.name)
                setattr(live, field.name, list(value) if isinstance(value, list) else value)
        window.theme_manager.apply(theme=live.theme, text_scale=live.text_scale)
        for key, action in getattr(window, "theme_actions", {}).items():
            action.setChecked(key == live.theme)
        window.composer.set_thinking(bool(live.enable_thinking))
        window.composer.set_send_with_ctrl_enter(bool(live.send_with_ctrl_enter))
        media = getattr(window, "media", None)
        if media is not None:
            media.voice.refresh_shortcut()  # a new push-to-talk shortcut works at once
        api_server = getattr(window, "api_server", None)
        if api_server is not None:  # started, stopped or restarted as the Server page says
            api_server.models_dir = live.models_dir
            api_server.apply(ServerPlan.from_settings(live))
        window.sig_settings_changed.emit()  # the existing save path writes the same values
        self.sig_applied.emit(live)

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.reject()

    # ---- reactions --------------------------------------------------------------------------

    def _confirm_stop(self) -> bool:
        parent: QWidget = self.dialog or self._window
        answer = QMessageBox.question(parent, "Stop the answer being written?",
                                      "Switching models stops the answer that is being written. "
                                      "What it has written so far is kept.")
        return answer == QMessageBox.StandardButton.Yes

    def _on_dialog_applied(self, new: Any) -> None:
        self.apply(new)

    def _on_dialog_folder_moving(self, kind: str) -> None:
        # Direct call, before any file moves: the database must be closed (its WAL checkpointed)
        # or the copy could miss the latest messages.
        if kind == "data" and self._history is not None:
            self._window.controller.stop()
            self._history.close()

    def _on_dialog_folder_moved(self, kind: str, folder: str) -> None:
        """The folder is in its new place (or back in the old one after a failure): use it."""
        use_folder(kind, folder)
        if kind == "data" and self._history is not None:
            reopen_history(self._history, Path(folder) / "history.db")
            controller = self._window.controller
            controller.refresh_conversations()
            current = controller.conversation_id
            controller.new_conversation()
            if current is not None:
                controller.open_conversation(current)

    def _on_dialog_finished(self, _result: int) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.deleteLater()
        # Back to typing: the window (not whatever the platform picks) gets the keyboard.
        self._window.activateWindow()
        self._window.composer.focus_input()

    def _on_switcher_started(self, name: str) -> None:
        self._switch_name = name
        self._window.banner.dismiss()
        self._window.status.set_loading(name, 0.0)
        self._window.composer.set_model_name(f"Loading {name}…")

    def _on_switcher_progress(self, fraction: float) -> None:
        # The final 1.0 comes after the window has shown the loaded model: don't bring back the bar.
        if self.switcher.switching:
            self._window.status.set_loading(self._switch_name, fraction)

    def _on_switcher_switched(self, info: dict[str, Any]) -> None:
        name = str(info.get("name") or os.path.basename(str(info.get("path", ""))))
        self._window.status.set_message(f"Switched to {name}")

    def _on_switcher_failed(self, message: str) -> None:
        summary, _, rest = message.partition("\n\n")
        self._window.banner.show_notice("Couldn't switch models", f"{summary} {rest}".strip())
        # The settings must name the model that runs, also when the dialog is already closed
        # (an open dialog does the same, then announces its reverted copy).
        back = self.switcher.current
        live = self._settings
        live.model_path = back.path if back else None
        live.mmproj_path = back.mmproj if back else None
        if back is not None:
            live.n_ctx = back.n_ctx
        remote = self.switcher.current_remote
        live.remote_server = remote.id if remote is not None else None
        self._window.sig_settings_changed.emit()
