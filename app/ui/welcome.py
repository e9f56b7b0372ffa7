"""The first-start screen: this computer, the one Gemma 4 the planner picks, and one Download button.

It stands in place of the chat while no model is installed or configured. The download is the
shared ModelsContext's job (model + projector, verified by the downloader); when it ends the
model is loaded with the planner's context and GPU layers, and the window turns to the chat as
soon as the engine reports the model loaded.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from app.core.download import DownloadError, save_token
from app.core.hardware.planner import Plan
from app.core.hardware.speed import measured_tok_s, speed_label
from app.services.downloads import DownloadJob, JobState
from app.ui.model_context import ModelsContext, is_auth_failure
from app.ui.model_rows import (
    GpuWarningBox,
    ask_hf_token,
    button,
    file_size,
    hardware_text,
    progress_text,
    stylesheet,
)

log = logging.getLogger(__name__)


class WelcomePane(QWidget):
    """Names the hardware, recommends one model, downloads and loads it with one click."""

    sig_open_file_requested = Signal()
    sig_browse_requested = Signal()

    def __init__(self, context: ModelsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = context
        self.plan: Plan | None = None
        self._job: DownloadJob | None = None
        self._loading = False
        self.setObjectName("WelcomePane")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(stylesheet())
        self._build()
        context.sig_machine_changed.connect(self.update_view)
        context.sig_catalog_changed.connect(self.update_view)
        context.sig_installed_changed.connect(self.update_view)
        context.sig_offline_changed.connect(lambda _on: self.update_view())
        context.probe.sig_failed.connect(lambda _m: self.update_view())
        self.update_view()
        context.probe.start()

    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.setSpacing(12)
        column.addStretch(1)
        title = QLabel("Welcome to Gemma Desktop")
        title.setObjectName("WelcomeTitle")
        column.addWidget(title)
        sub = QLabel("Chat with Google's Gemma 4 on this computer. After one download, nothing "
                     "leaves your machine and no network is needed.")
        sub.setObjectName("ModelsHint")
        sub.setWordWrap(True)
        column.addWidget(sub)
        self.hardware = QLabel()
        self.hardware.setObjectName("HardwareLine")
        self.hardware.setWordWrap(True)
        self.hardware.setAccessibleName("This computer")
        column.addWidget(self.hardware)

        self.warning = GpuWarningBox()
        self.copy_button = self.warning.copy_button
        column.addWidget(self.warning)

        card = QFrame()
        card.setObjectName("PickCard")
        cl = QVBoxLayout(card)
        cl.setContentsMargins(22, 18, 22, 18)
        cl.setSpacing(8)
        caption = QLabel("RECOMMENDED FOR THIS COMPUTER")
        caption.setObjectName("GroupTitle")
        cl.addWidget(caption)
        self.pick_name = QLabel()
        self.pick_name.setObjectName("PickName")
        cl.addWidget(self.pick_name)
        self.reason = QLabel()
        self.reason.setObjectName("PickReason")
        self.reason.setWordWrap(True)
        cl.addWidget(self.reason)
        actions = QHBoxLayout()
        self.download_button = button("Download", "BigButton")
        self.download_button.clicked.connect(self._on_download_clicked)
        actions.addWidget(self.download_button)
        self.pause_button = button("Pause")
        self.pause_button.clicked.connect(self._on_pause_clicked)
        actions.addWidget(self.pause_button)
        self.cancel_button = button("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        actions.addWidget(self.cancel_button)
        actions.addStretch(1)
        cl.addLayout(actions)
        self.progress = QProgressBar()
        self.progress.setObjectName("DownloadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setAccessibleName("Download progress")
        cl.addWidget(self.progress)
        self.status = QLabel()
        self.status.setObjectName("ProgressText")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        cl.addWidget(self.status)
        column.addWidget(card)

        links = QHBoxLayout()
        self.open_link = button("Open a GGUF file…", "LinkButton")
        self.open_link.clicked.connect(self.sig_open_file_requested.emit)
        self.browse_link = button("Browse all models", "LinkButton")
        self.browse_link.clicked.connect(self.sig_browse_requested.emit)
        links.addWidget(self.open_link)
        links.addWidget(self.browse_link)
        links.addStretch(1)
        column.addLayout(links)
        column.addStretch(2)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMaximumWidth(680)
        holder.setMinimumWidth(420)
        outer.addWidget(holder, 4)
        outer.addStretch(1)

    # ----- view ----------------------------------------------------------------------------

    def refresh_icons(self) -> None:
        """Called by the window when the theme changes: re-colour from the new palette."""
        self.setStyleSheet(stylesheet())

    @property
    def entry_id(self) -> str | None:
        return self.plan.candidate.model_id if self.plan and self.plan.candidate else None

    def update_view(self) -> None:
        probe = self.ctx.probe
        report = probe.report
        if report is None and not probe.error:
            self.hardware.setText("Looking at this computer…")
            self.warning.hide()
            self.pick_name.setText("Finding the best model…")
            self.reason.setText("")
            self._show_buttons(download=False)
            self.download_button.setEnabled(False)
            self.download_button.setText("Download")
            return
        self.hardware.setText(hardware_text(report, probe.error))
        self.warning.set_report(report)
        if self._job is None:  # keep the pick steady while its download runs
            self.plan = self.ctx.recommendation()
        plan = self.plan
        if plan is None or plan.candidate is None:
            self.pick_name.setText("No Gemma 4 model fits right now")
            self.reason.setText(plan.explanation if plan else "")
            self._show_buttons(download=False)
            return
        entry = self.ctx.catalog.entry(plan.candidate.model_id)
        tok_s = speed_label(plan.predicted_decode_tok_s, measured_tok_s(entry.file.filename))
        self.pick_name.setText(f"Gemma 4 {entry.variant.id} · {entry.quant}"
                               + (f" · {tok_s}" if tok_s else ""))
        self.reason.setText(plan.explanation)
        self._update_action(entry.id)

    def _update_action(self, entry_id: str) -> None:
        entry = self.ctx.catalog.entry(entry_id)
        total = self.ctx.download_bytes(entry)
        installed = self.ctx.installed_paths(entry) is not None
        job = self._job or self.ctx.job(entry_id)
        state = job.state if job is not None else None
        self.download_button.setEnabled(True)
        if self._loading:
            self._show_buttons(download=True)
            self.download_button.setEnabled(False)
            self.download_button.setText("Loading the model…")
        elif installed:
            self._show_buttons(download=True)
            self.download_button.setText("Start chatting")
        elif state is JobState.RUNNING:
            self._show_buttons(pause=True, cancel=True, progress=True)
            self.pause_button.setText("Pause")
        elif state in (JobState.PAUSED, JobState.FAILED) or self.ctx.partial_bytes(entry) > 0:
            self._show_buttons(download=True, cancel=True, progress=True)
            self.download_button.setText("Retry" if state is JobState.FAILED else "Resume")
            if job is not None and job.last_progress[1]:
                done, total_now = job.last_progress[0], job.last_progress[1]
            else:
                done, total_now = self.ctx.partial_bytes(entry), total
            self.progress.setValue(int(1000 * done / total_now) if total_now else 0)
            if state is not JobState.FAILED:
                self.status.setText(f"Paused — resume · {progress_text(done, total_now, 0, -1)}")
        else:
            self._show_buttons(download=True)
            self.download_button.setText(f"Download ({file_size(total)})")
        if self.ctx.offline and not installed:
            self.download_button.setEnabled(False)
            self.status.setText("Offline mode is on: turn it off in Models… to download, or open "
                                "a GGUF file you already have.")
            self.status.show()

    def _show_buttons(self, download: bool = False, pause: bool = False, cancel: bool = False,
                      progress: bool = False) -> None:
        self.download_button.setVisible(download)
        self.pause_button.setVisible(pause)
        self.cancel_button.setVisible(cancel)
        self.progress.setVisible(progress)
        self.status.setVisible(progress or bool(self.status.text()))

    # ----- actions -------------------------------------------------------------------------

    def _on_download_clicked(self) -> None:
        entry_id = self.entry_id
        if entry_id is None:
            return
        entry = self.ctx.catalog.entry(entry_id)
        if self.ctx.installed_paths(entry) is not None:
            self._use(entry_id)
            return
        try:
            job = self.ctx.download(entry_id)
        except DownloadError as exc:
            self.status.setText(str(exc))
            self.status.show()
            return
        self._watch(job)
        self.status.setText("Starting the download…")
        self.update_view()

    def _on_pause_clicked(self) -> None:
        if self._job is not None:
            self._job.pause()

    def _on_cancel_clicked(self) -> None:
        entry_id = self.entry_id
        if entry_id is None:
            return
        job = self._job or self.ctx.downloads.download(
            entry_id, self.ctx.files(self.ctx.catalog.entry(entry_id)), start=False)
        self._watch(job)
        job.cancel()

    def _watch(self, job: DownloadJob) -> None:
        if job is self._job:
            return
        self._job = job
        job.sig_progress.connect(self._on_job_progress)
        job.sig_finished.connect(self._on_job_finished)
        job.sig_failed.connect(self._on_job_failed)
        job.sig_paused.connect(self._on_job_paused)
        job.sig_cancelled.connect(self._on_job_cancelled)

    def _on_job_progress(self, done: int, total: int, speed: float, eta: float) -> None:
        self.progress.setValue(int(1000 * done / total) if total else 0)
        self.status.setText(progress_text(done, total, speed, eta))

    def _on_job_paused(self) -> None:
        self.update_view()

    def _on_job_cancelled(self) -> None:
        self._job = None
        self.status.setText("Download cancelled.")
        self.update_view()

    def _on_job_failed(self, message: str) -> None:
        entry_id = self.entry_id
        if entry_id is not None and self._job is not None:
            repo = self.ctx.catalog.entry(entry_id).repo.repo_id
            if is_auth_failure(message, repo):
                token = ask_hf_token(self, repo, "cannot access" in message)
                if token:
                    save_token(token)
                    self._job.start()
                    self.update_view()
                    return
        self.status.setText(message)
        self.update_view()

    def _on_job_finished(self, _path: str) -> None:
        self.status.setText("Downloaded and verified. Loading the model…")
        if self.entry_id is not None:
            self._use(self.entry_id)

    def _use(self, entry_id: str) -> None:
        self._loading = True
        self.status.setText("Loading the model…")
        self.update_view()
        self.ctx.use(entry_id, plan=self.plan)

    def set_load_failed(self, message: str) -> None:
        """The engine could not load the model: say why and let the user try again."""
        self._loading = False
        self.status.setText(f"The model could not be loaded: {message}")
        self.status.show()
        self.update_view()


def install_welcome(window: Any, context: ModelsContext, client: Any) -> WelcomePane:
    """Show the welcome screen in the window until the engine reports a model loaded."""
    pane = WelcomePane(context, window)
    pane.sig_open_file_requested.connect(window.open_model_action.trigger)
    pane.sig_browse_requested.connect(window.open_models)
    window.show_welcome(pane)

    def on_loaded(_info: dict[str, Any]) -> None:
        window.hide_welcome()

    client.sig_loaded.connect(on_loaded)
    client.sig_load_failed.connect(pane.set_load_failed)
    return pane
