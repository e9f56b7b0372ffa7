"""The model manager: every catalog model with its size, memory need and fit, and its downloads.

Rows come from the catalog (official repositories first, then any the user added) plus the GGUF
files the user imported. Downloads belong to the shared `ModelsContext`, so closing the dialog
does not stop them, and reopening it shows them where they are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.catalog import CatalogError
from app.core.download import DownloadError, save_token
from app.core.hardware.devices import HardwareReport
from app.services.downloads import DownloadJob
from app.ui import theme
from app.ui.model_context import BackgroundTask, ModelsContext, is_auth_failure
from app.ui.model_list import LOCAL_PREFIX, ModelList, ctx_label
from app.ui.model_rows import (
    FAILED,
    RUNNING,
    GpuWarningBox,
    ModelRowWidget,
    ask_hf_token,
    button,
    file_size,
    hardware_text,
    stylesheet,
)

log = logging.getLogger(__name__)

CONTEXTS = (4096, 8192, 16384, 32768, 65536, 131072)


class ModelManagerDialog(QDialog):
    """Browse, download, pause/resume/cancel, delete, import and use models."""

    sig_settings_changed = Signal()  # the offline switch changed settings.offline

    def __init__(self, context: ModelsContext, parent: QWidget | None = None, *,
                 refresh_on_open: bool = True) -> None:
        super().__init__(parent)
        self.ctx = context
        self._refresh_on_open = refresh_on_open
        self._hooked: set[int] = set()
        self.task: BackgroundTask | None = None  # the running refresh/import/add (one at a time)
        self.setWindowTitle("Models")
        self.setObjectName("ModelsRoot")
        self.resize(900, 680)
        self._build()
        c = self.ctx
        c.sig_catalog_changed.connect(self.rebuild)
        c.sig_installed_changed.connect(self.update_rows)
        c.sig_machine_changed.connect(self._on_context_machine_changed)
        c.downloads.sig_job_added.connect(self._on_downloads_job_added)
        for key in c.downloads.jobs():
            self._hook_job(key)
        self._on_context_machine_changed()
        self.rebuild()
        c.probe.start()

    # ----- building ------------------------------------------------------------------------

    def _build(self) -> None:
        self.setStyleSheet(stylesheet())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 14)
        layout.setSpacing(8)
        self.hardware = QLabel("Looking at this computer…")
        self.hardware.setObjectName("HardwareLine")
        self.hardware.setWordWrap(True)
        self.hardware.setAccessibleName("This computer")
        layout.addWidget(self.hardware)
        self.warning = GpuWarningBox()
        layout.addWidget(self.warning)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Memory shown for"))
        self.ctx_combo = QComboBox()
        self.ctx_combo.setAccessibleName("Context length for the memory estimate")
        for n in CONTEXTS:
            self.ctx_combo.addItem(f"{ctx_label(n)} context", n)
        wanted = self.ctx.context_length()
        self.ctx_combo.setCurrentIndex(min(range(len(CONTEXTS)),
                                           key=lambda i: abs(CONTEXTS[i] - wanted)))
        self.ctx_combo.currentIndexChanged.connect(lambda _i: self.update_rows())
        bar.addWidget(self.ctx_combo)
        bar.addStretch(1)
        self.offline = QCheckBox("Offline mode")
        self.offline.setToolTip("Nothing connects to the internet; installed models keep working")
        self.offline.setChecked(self.ctx.offline)
        self.offline.toggled.connect(self._on_offline_toggled)
        bar.addWidget(self.offline)
        self.refresh_button = button("Refresh list")
        self.refresh_button.clicked.connect(self.refresh_catalog)
        self.add_button = button("Add repository…")
        self.add_button.clicked.connect(self._on_add_clicked)
        self.import_button = button("Import GGUF…")
        self.import_button.clicked.connect(self._on_import_clicked)
        for b in (self.refresh_button, self.add_button, self.import_button):
            bar.addWidget(b)
        layout.addLayout(bar)

        self.notice = QLabel()
        self.notice.setObjectName("ModelsHint")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setAccessibleName("Model manager message")
        layout.addWidget(self.notice)

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.list = ModelList(self.ctx, self.n_ctx)
        self.list.sig_action.connect(self._on_row_action)
        self._rows = self.list.rows  # the same dict: the list fills it, the job hooks read it
        self.scroll_area.setWidget(self.list)
        layout.addWidget(self.scroll_area, 1)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        close = button("Close")
        close.clicked.connect(self.accept)
        bottom.addWidget(close)
        layout.addLayout(bottom)
        self._apply_offline(self.ctx.offline)

    def rebuild(self) -> None:
        """Recreate the rows (the catalog or the imported files changed)."""
        self.list.rebuild()

    # ----- state -> rows -------------------------------------------------------------------

    def n_ctx(self) -> int:
        return int(self.ctx_combo.currentData())

    def row(self, key: str) -> ModelRowWidget:
        return self._rows[key]

    def update_rows(self) -> None:
        """Fit badges, sizes, installed/in-use tags and download states of every row."""
        self.list.update_rows()

    # ----- actions -------------------------------------------------------------------------

    def _on_row_action(self, key: str, action: str) -> None:
        try:
            if key.startswith(LOCAL_PREFIX):
                self._local_action(key.removeprefix(LOCAL_PREFIX), action)
            else:
                self._catalog_action(key, action)
        except (DownloadError, CatalogError, LookupError, RuntimeError, OSError) as exc:
            self.show_notice(str(exc))
        self.update_rows()

    def _catalog_action(self, key: str, action: str) -> None:
        job = self.ctx.job(key)
        if action in ("download", "resume"):
            self.show_notice("")
            self.ctx.download(key)
        elif action == "pause" and job is not None:
            job.pause()
        elif action == "cancel":
            if job is None:  # partial files from an earlier run: a job that only discards them
                entry = self.ctx.catalog.entry(key)
                job = self.ctx.downloads.download(key, self.ctx.files(entry), start=False)
            job.cancel()
        elif action == "delete":
            entry = self.ctx.catalog.entry(key)
            if self.confirm_delete(entry.label, self.ctx.download_bytes(entry)):
                self.ctx.remove(key)
                self.show_notice(f"Deleted {entry.label}.", info=True)
        elif action == "use":
            plan = self.ctx.use(key, self.n_ctx())
            self.show_notice(f"Loading {plan.explanation}", info=True)
            self.accept()

    def _local_action(self, filename: str, action: str) -> None:
        model = next(m for m in self.ctx.local_models() if m.filename == filename)
        if action == "delete" and self.confirm_delete(filename, model.size):
            self.ctx.remove_local(model)
        elif action == "use":
            self.ctx.use_local(model, self.n_ctx())
            self.accept()

    def confirm_delete(self, name: str, size: int) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete model",
                          f"Delete {name}? This frees {file_size(size)} of disk space; you can "
                          "download it again later.", QMessageBox.StandardButton.NoButton, self)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is delete

    def ask_token(self, repo_id: str, had_token: bool) -> str | None:
        return ask_hf_token(self, repo_id, had_token)

    def show_notice(self, text: str, info: bool = False) -> None:
        self.notice.setText(text)
        self.notice.setStyleSheet("" if info or not text else f"color: {theme.color('danger')};")

    # ----- downloads -----------------------------------------------------------------------

    def _on_downloads_job_added(self, key: str) -> None:
        self._hook_job(key)

    def _hook_job(self, key: str) -> None:
        job = self.ctx.job(key)
        if job is None or id(job) in self._hooked:
            return
        self._hooked.add(id(job))
        job.sig_progress.connect(lambda d, t, s, e, k=key: self._on_job_progress(k, d, t, s, e))
        job.sig_failed.connect(lambda m, k=key, j=job: self._on_job_failed(k, j, m))
        job.sig_paused.connect(self.update_rows)
        job.sig_cancelled.connect(self.update_rows)
        job.sig_finished.connect(lambda _p: self.update_rows())

    def _on_job_progress(self, key: str, done: int, total: int, speed: float, eta: float) -> None:
        row = self._rows.get(key)
        if row is not None:
            if row.state != RUNNING:
                row.set_state(RUNNING)
            row.set_progress(done, total, speed, eta)

    def _on_job_failed(self, key: str, job: DownloadJob, message: str) -> None:
        entry = self.ctx.catalog.entry(key)
        if is_auth_failure(message, entry.repo.repo_id):
            token = self.ask_token(entry.repo.repo_id, "cannot access" in message)
            if token:
                save_token(token)
                job.start()
                self.update_rows()
                return
        row = self._rows.get(key)
        if row is not None:
            row.set_state(FAILED, message)

    # ----- catalog, import, offline ---------------------------------------------------------

    def refresh_catalog(self) -> BackgroundTask | None:
        if self.ctx.offline or (self.task is not None and self.task.running()):
            return None
        self.show_notice("Checking Hugging Face for the current list of files…", info=True)
        return self._run(self.ctx.refresh_task(), "The model list is up to date.")

    def add_repository(self, repo_id: str, variant_id: str) -> BackgroundTask:
        self.show_notice(f"Reading {repo_id} on Hugging Face…", info=True)
        return self._run(self.ctx.add_repo_task(repo_id, variant_id), f"Added {repo_id}.")

    def import_file(self, path: str) -> BackgroundTask:
        self.show_notice(f"Checking and copying {Path(path).name}…", info=True)
        task = self.ctx.import_task(Path(path))
        task.sig_progress.connect(lambda d, t: self.show_notice(
            f"Copying {Path(path).name}: {file_size(d)} of {file_size(t)}", info=True))
        return self._run(task, f"Imported {Path(path).name}. Press Use to chat with it.")

    def _run(self, task: BackgroundTask, done_text: str) -> BackgroundTask:
        self.task = task
        task.sig_finished.connect(lambda _r: self.show_notice(done_text, info=True))
        task.sig_failed.connect(self.show_notice)
        task.start()
        return task

    def _on_add_clicked(self) -> None:
        repo_id, ok = QInputDialog.getText(
            self, "Add a repository", "Hugging Face repository id (owner/name), for example "
            "unsloth/gemma-4-E4B-it-GGUF:")
        repo_id = repo_id.strip()
        if not ok or not repo_id:
            return
        variant = self.ctx.catalog.variant_for_repo(repo_id)
        if variant is None:
            ids = [v.id for v in self.ctx.catalog.variants]
            choice, ok = QInputDialog.getItem(self, "Add a repository",
                                              "Which Gemma 4 size does it hold?", ids, 0, False)
            if not ok:
                return
            variant_id = choice
        else:
            variant_id = variant.id
        self.add_repository(repo_id, variant_id)

    def _on_import_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a GGUF model", os.path.expanduser("~"),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.import_file(path)

    def _on_offline_toggled(self, on: bool) -> None:
        self.ctx.set_offline(on)
        self._apply_offline(on)
        self.sig_settings_changed.emit()
        self.update_rows()

    def _apply_offline(self, on: bool) -> None:
        for b in (self.refresh_button, self.add_button):
            b.setEnabled(not on)
        if on:
            self.show_notice("Offline mode is on: the list is the one saved last time, and nothing "
                             "connects to the internet. Installed models work as usual.", info=True)
        elif self.notice.text().startswith("Offline mode is on"):
            self.show_notice("")

    def _on_context_machine_changed(self) -> None:
        report: HardwareReport | None = self.ctx.probe.report
        if report is not None:
            self.hardware.setText(hardware_text(report))
            self.warning.set_report(report)
        elif self.ctx.probe.error:
            self.hardware.setText(hardware_text(None, self.ctx.probe.error))
        if self._rows:
            self.update_rows()

    def refresh_icons(self) -> None:
        """Called by the window when the theme changes: re-colour from the new palette."""
        self.setStyleSheet(stylesheet())

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._refresh_on_open and not self.ctx.offline:
            self._refresh_on_open = False
            self.refresh_catalog()

    def done(self, result: int) -> None:
        # Downloads go on in the background; only the dialog's own refresh is waited for.
        if self.task is not None:
            self.task.wait(10)
        super().done(result)
