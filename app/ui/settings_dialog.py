"""The settings dialog: a sidebar of pages editing a copy of the Settings; Apply saves and switches.

Nothing the user touches changes the app until Apply or OK: the pages write into a copy, which is
saved atomically and sent out with sig_applied. Cancel throws the copy away and the pages show
the last applied values again. A change of model (or of how it is loaded) is switched live
through the ModelSwitcher; if the new model fails, the previous one comes back and the saved
settings are put back to it. Changed folders are moved with their files on a worker thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QMessageBox,
    QProgressDialog,
    QWidget,
)

from app.core import paths
from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings, save_settings
from app.ui.settings_layout import build_frame
from app.ui.settings_pages.appearance_page import AppearancePage
from app.ui.settings_pages.common import SettingsPage, dialog_stylesheet
from app.ui.settings_pages.folder_move import FolderMoveJob, MoveError, check_move
from app.ui.settings_pages.generation_page import GenerationPage
from app.ui.settings_pages.model_page import ModelPage
from app.ui.settings_pages.server_page import ServerPage
from app.ui.settings_pages.storage_page import StoragePage
from app.ui.settings_pages.tools_page import ToolsPage
from app.ui.settings_pages.voice_page import VoicePage
from app.ui.settings_support import default_machine, installed_models, rebase_model_paths

log = logging.getLogger(__name__)

MODEL_FIELDS = ("model_path", "mmproj_path", "n_ctx", "n_gpu_layers", "remote_server")


class SettingsDialog(QDialog):
    """Model, Generation, Voice, Appearance, Storage, Tools and Server pages over a copy of the
    Settings."""

    sig_applied = Signal(object)  # a copy of the Settings just saved
    sig_folder_moving = Signal(str)  # "models" | "data": close what is open there (direct call)
    sig_folder_moved = Signal(str, str)  # kind, new folder

    def __init__(self, settings: Settings, *, switcher: Any = None, store: Any = None,
                 machine: Machine | None = None, active_model: str | None = None,
                 settings_path: Path | None = None, notice: str | None = None,
                 server: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SettingsDialog")
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.resize(900, 680)
        self._committed = settings.copy()  # what the app runs with; never the caller's object
        self._path = settings_path
        self._switcher = switcher
        self._switch_pending: str | None = None
        self._moves: list[tuple[str, Path, Path]] = []
        self._move_job: FolderMoveJob | None = None
        self._move_dialog: QProgressDialog | None = None
        self._pending: Settings | None = None
        self._close_after_apply = False
        # Hooks a test (or another front end) may replace: ask(title, text) and inform(title, text).
        self.ask: Callable[[str, str], bool] = self._ask_user
        self.inform: Callable[[str, str], None] = self._inform_user

        models, files = installed_models(store)
        self.model_page = ModelPage(machine or default_machine(), models,
                                    active_model or settings.model_path)
        self.generation_page = GenerationPage()
        self.voice_page = VoicePage()
        self.appearance_page = AppearancePage()
        self.storage_page = StoragePage(*self._roots(settings), files, lambda t, m: self.ask(t, m))
        self.tools_page = ToolsPage()
        self.server_page = ServerPage(server)
        self.pages: list[SettingsPage] = [self.model_page, self.generation_page, self.voice_page,
                                          self.appearance_page, self.storage_page, self.tools_page,
                                          self.server_page]
        self._build(notice)
        self.model_page.sig_facts_changed.connect(self.generation_page.set_model_facts)
        if switcher is not None:
            switcher.sig_started.connect(self._on_switcher_started)
            switcher.sig_progress.connect(self._on_switcher_progress)
            switcher.sig_switched.connect(self._on_switcher_switched)
            switcher.sig_failed.connect(self._on_switcher_failed)
        self._load_pages()

    # ----- layout --------------------------------------------------------------------------

    def _build(self, notice: str | None) -> None:
        frame = build_frame(self, self.pages, notice)
        self.nav, self.stack, self.notice = frame.nav, frame.stack, frame.notice
        self.buttons = frame.buttons
        self.ok_button = frame.ok_button
        self.apply_button = frame.apply_button
        self.cancel_button = frame.cancel_button
        self.ok_button.clicked.connect(self._on_ok_clicked)
        self.apply_button.clicked.connect(self._on_apply_clicked)
        self.cancel_button.clicked.connect(self.reject)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        self.restyle()
        super().showEvent(event)

    def restyle(self) -> None:
        """Follow the app's current light/dark palette and text size."""
        self.setStyleSheet(dialog_stylesheet(text_scale=self._committed.text_scale))

    # ----- public --------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """A copy of the settings as last applied."""
        return self._committed.copy()

    def show_page(self, title: str) -> None:
        for index, page in enumerate(self.pages):
            if page.title == title:
                self.nav.setCurrentRow(index)

    def edited(self) -> Settings:
        """What the controls show now, as Settings (nothing is saved)."""
        edited = self._committed.copy()
        for page in self.pages:
            page.store(edited)
        return edited

    def apply(self) -> bool:
        """Save and announce the edited settings; folder moves and model switches start here.

        Returns False when the folders are being moved (the rest follows when they are done)
        or when saving failed.
        """
        if self._move_job is not None:
            return False
        new = self.edited()
        old_roots = self._roots(self._committed)
        new_roots = self._roots(new)
        self._moves = []
        for kind, old, target in (("models", old_roots[0], new_roots[0]),
                                  ("data", old_roots[1], new_roots[1])):
            if old.resolve() != target.resolve():
                try:
                    check_move(old, target)
                except MoveError as exc:
                    self.inform("The folder cannot be moved", str(exc))
                    setattr(new, f"{kind}_dir", getattr(self._committed, f"{kind}_dir"))
                    continue
                self._moves.append((kind, old, target))
        if self._moves:
            self._pending = new
            self._set_busy(True)
            self._start_next_move()
            return False
        return self._commit(new)

    # ----- applying ------------------------------------------------------------------------

    def _commit(self, new: Settings) -> bool:
        old = self._committed
        model_changed = bool(new.model_path or new.remote_server) and any(
            getattr(new, f) != getattr(old, f) for f in MODEL_FIELDS)
        if model_changed and self._switcher is not None and not self._start_switch(new):
            for name in MODEL_FIELDS:  # declined or not possible now: keep the running model
                setattr(new, name, getattr(old, name))
            new.recent_models = list(old.recent_models)
            self.model_page.load(new)
        try:
            save_settings(new, self._path)
        except OSError as exc:
            log.exception("saving settings failed")
            reason = exc.strerror or str(exc)
            self.inform("Settings not saved", f"The settings could not be saved ({reason}). Check "
                        "that the config folder is writable, then press Apply again.")
            return False
        self._committed = new.copy()
        self.restyle()
        self.sig_applied.emit(new.copy())
        return True

    def _start_switch(self, new: Settings) -> bool:
        if new.remote_server:  # the chat runs on a server (Model page → Servers)
            server = self.model_page.selected_server()
            started = server is not None and self._switcher.switch_remote(
                server, confirm=lambda: self.ask(
                    "Stop the answer being written?", "Switching models stops the answer that "
                    "is being written. What it has written so far is kept."))
            if started:
                self._switch_pending = new.remote_server
            return bool(started)
        assert new.model_path is not None
        layers = new.n_gpu_layers if new.n_gpu_layers is not None else self.model_page.auto_gpu_layers()
        started = bool(self._switcher.switch(
            new.model_path, new.mmproj_path, new.n_ctx, layers, kv_type=new.kv_cache_type,
            confirm=lambda: self.ask("Stop the answer being written?",
                                     "Switching models stops the answer that is being written. "
                                     "What it has written so far is kept.")))
        if started:
            self._switch_pending = new.model_path
        elif self._switcher.switching:
            self.model_page.show_switch(None, "Another model is still loading; apply again when "
                                        "it is ready.", error=True)
        return started

    def _start_next_move(self) -> None:
        kind, source, target = self._moves.pop(0)
        self.sig_folder_moving.emit(kind)
        models_root = self._roots(self._committed)[0]
        exclude = (models_root,) if kind == "data" else ()
        self._move_job = FolderMoveJob(kind, source, target, exclude)
        dialog = QProgressDialog(f"Moving the {kind} folder to {target}…", "Cancel", 0, 1000, self)
        dialog.setWindowTitle("Moving files")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(300)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self._move_job.cancel)
        self._move_dialog = dialog
        self._move_job.sig_progress.connect(lambda f: dialog.setValue(int(f * 1000)))
        self._move_job.sig_succeeded.connect(self._on_move_finished)
        self._move_job.sig_failed.connect(self._on_move_failed)
        self._move_job.start()

    def _end_move(self) -> str:
        assert self._move_job is not None
        kind = self._move_job.kind
        self._move_job.wait()
        self._move_job.deleteLater()
        self._move_job = None
        if self._move_dialog is not None:
            self._move_dialog.close()
            self._move_dialog.deleteLater()
            self._move_dialog = None
        return kind

    def _on_move_finished(self, target: str) -> None:
        kind = self._end_move()
        if kind == "models":
            # The active model moved with the folder: point at its new place (no reload needed).
            old_root = self._roots(self._committed)[0]
            for settings in (self._pending, self._committed):
                if settings is not None:
                    rebase_model_paths(settings, old_root, Path(target))
        self.sig_folder_moved.emit(kind, target)
        self._after_move()

    def _on_move_failed(self, message: str) -> None:
        kind = self._end_move()
        assert self._pending is not None
        setattr(self._pending, f"{kind}_dir", getattr(self._committed, f"{kind}_dir"))
        self.sig_folder_moved.emit(kind, str(self._roots(self._committed)[kind == "data"]))
        self.inform("The folder was not moved", message)
        self._after_move()

    def _after_move(self) -> None:
        if self._moves:
            self._start_next_move()
            return
        pending, self._pending = self._pending, None
        self._set_busy(False)
        assert pending is not None
        committed = self._commit(pending)
        self.storage_page.set_roots(*self._roots(self._committed))
        self.storage_page.load(self._committed)
        if committed and self._close_after_apply:
            self._close_after_apply = False
            super().accept()

    def _set_busy(self, busy: bool) -> None:
        for button in (self.ok_button, self.apply_button, self.cancel_button):
            button.setEnabled(not busy)

    @staticmethod
    def _roots(settings: Settings) -> tuple[Path, Path]:
        models = Path(settings.models_dir) if settings.models_dir else paths.models_dir()
        data = Path(settings.data_dir) if settings.data_dir else paths.data_dir()
        return models, data

    def _load_pages(self) -> None:
        for page in self.pages:
            page.load(self._committed)

    # ----- reactions -----------------------------------------------------------------------

    def _on_ok_clicked(self) -> None:
        if self.apply():
            super().accept()
        elif self._move_job is not None:
            self._close_after_apply = True

    def _on_apply_clicked(self) -> None:
        self.apply()

    def reject(self) -> None:
        """Cancel: forget the edits; the pages show the applied settings again."""
        if self._move_job is not None:
            return  # the progress dialog's Cancel stops a move; this one waits for it
        self._load_pages()
        super().reject()

    def done(self, result: int) -> None:
        self.model_page.shutdown()
        self.tools_page.shutdown()
        super().done(result)

    def _on_switcher_started(self, name: str) -> None:
        self.model_page.show_switch(0.0, f"Loading {name}…")

    def _on_switcher_progress(self, fraction: float) -> None:
        if self._switch_pending:
            self.model_page.show_switch(fraction, f"Loading {os.path.basename(self._switch_pending)}…")

    def _on_switcher_switched(self, info: dict) -> None:
        path = str(info.get("path") or self._switch_pending or "")
        self._switch_pending = None
        self.model_page.set_active(path)
        self.model_page.show_switch(None, f"{os.path.basename(path)} is loaded and ready.")

    def _on_switcher_failed(self, message: str) -> None:
        if self._switch_pending is None:
            return
        self._switch_pending = None
        back = self._switcher.current
        reverted = self._committed.copy()
        reverted.model_path = back.path if back else None
        reverted.mmproj_path = back.mmproj if back else None
        if back is not None:
            reverted.n_ctx = back.n_ctx
        remote = self._switcher.current_remote
        reverted.remote_server = remote.id if remote is not None else None
        try:
            save_settings(reverted, self._path)
        except OSError:
            log.exception("saving settings after a failed switch failed")
        self._committed = reverted
        self.model_page.set_active(remote.model_path if remote is not None
                                   else back.path if back else None)
        self.model_page.load(reverted)
        self.model_page.show_switch(None, message, error=True)
        self.sig_applied.emit(reverted.copy())

    # ----- default hooks -------------------------------------------------------------------

    def _ask_user(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def _inform_user(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)
