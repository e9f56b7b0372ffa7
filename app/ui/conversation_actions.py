"""Conversation tools of the window: export to Markdown/JSON, import from JSON, per-chat overrides.

Export and import read every message and copy attachment files, so they run on a worker thread
(HistoryStore allows any thread; its calls are serialised). The file dialogs are hooks a test
(or another front end) may replace: choose_export_path(title) and choose_import_path().
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.storage.settings import PRESETS
from app.services.operations import Operation, user_message

log = logging.getLogger(__name__)

EXPORT_FILTERS = "Markdown (*.md);;JSON — can be imported again (*.json)"
_BUNDLE_FILES = ("conversation.json", "conversation.md")


# ---- the work (plain functions, no Qt) ----------------------------------------------------


def safe_file_stem(title: str) -> str:
    """A file name from a conversation title (no separators or control characters)."""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title).strip(" .")
    return " ".join(stem.split())[:80] or "conversation"


def export_conversation(store: Any, conversation_id: Any, target: Path) -> Path:
    """Write the conversation to target (.json: the whole tree; otherwise Markdown of the branch).

    Images and audio go next to it under their sha256 names, which is what both files link to.
    Built in a temporary folder beside target first, so a failure leaves no half-written file.
    """
    target = Path(target)
    fmt = "json" if target.suffix.lower() == ".json" else "md"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        folder = Path(tmp)
        store.export_files(conversation_id, folder)
        for file in folder.iterdir():
            if file.name not in _BUNDLE_FILES and not (target.parent / file.name).exists():
                os.replace(file, target.parent / file.name)
        os.replace(folder / f"conversation.{fmt}", target)
    return target


def import_conversation(store: Any, source: Path) -> Any:
    """Add the conversation of an exported JSON file (attachments are read from its folder)."""
    source = Path(source)
    try:
        data = json.loads(source.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{source.name} could not be read as JSON ({exc.__class__.__name__}). "
                         "Choose a .json file exported by Gemma Desktop.") from exc
    return store.import_json(data, source.parent)


def transfer_job(work: Callable[[], Any], describe: str, parent: QObject | None = None) -> Operation:
    """One export or import off the GUI thread; sig_succeeded carries the Path or the Conversation."""

    def failure(exc: BaseException) -> str:
        if isinstance(exc, OSError):
            return (f"The {describe} failed: {exc.strerror or exc}. Check that the folder exists "
                    "and is writable, then try again.")
        return user_message(exc)

    return Operation(lambda ctx: work(), name=f"conversation-{describe}", failure_message=failure,
                     parent=parent)


# ---- per-conversation overrides -----------------------------------------------------------


class ConversationSettingsDialog(QDialog):
    """System prompt and preset for one conversation; unticked / "Same as Settings" = no override."""

    def __init__(self, title: str, system_prompt: str | None, preset: str | None,
                 default_prompt: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Conversation settings")
        self.setAccessibleName("Conversation settings")
        self.resize(520, 360)
        layout = QVBoxLayout(self)
        heading = QLabel(f"Settings for “{title}” only. Everything else follows Settings.")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        form = QFormLayout()
        self.own_prompt = QCheckBox("Use its own system prompt")
        self.own_prompt.setAccessibleName("Use its own system prompt")
        self.own_prompt.setChecked(system_prompt is not None)
        form.addRow(self.own_prompt)
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("System prompt of this conversation")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setPlainText(system_prompt if system_prompt is not None else default_prompt)
        self.prompt.setEnabled(system_prompt is not None)
        self.own_prompt.toggled.connect(self.prompt.setEnabled)
        form.addRow(self.prompt)
        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset of this conversation")
        self.preset.addItem("Same as Settings", None)
        for name in PRESETS:
            self.preset.addItem(name, name)
        self.preset.setCurrentIndex(max(0, self.preset.findData(preset)) if preset else 0)
        form.addRow("Preset", self.preset)
        layout.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def values(self) -> tuple[str | None, str | None]:
        """(system prompt or None, preset or None) as chosen."""
        prompt = self.prompt.toPlainText() if self.own_prompt.isChecked() else None
        return prompt, self.preset.currentData()


# ---- the window's side --------------------------------------------------------------------


class ConversationActions(QObject):
    """Export, import and per-conversation settings, started from menus; results as signals."""

    sig_exported = Signal(str)  # path written
    sig_imported = Signal(object)  # conversation id
    sig_overrides_changed = Signal(object)  # conversation id
    sig_failed = Signal(str)  # plain words with the action to take

    def __init__(self, store: Any, settings: Any, parent_widget: QWidget) -> None:
        super().__init__(parent_widget)
        self._store = store
        self._settings = settings
        self._parent = parent_widget
        self.job: Operation | None = None
        self.choose_export_path: Callable[[str], str | None] = self._ask_export_path
        self.choose_import_path: Callable[[], str | None] = self._ask_import_path
        self.edit_overrides_dialog: Callable[[ConversationSettingsDialog], bool] = (
            lambda dialog: dialog.exec() == QDialog.DialogCode.Accepted)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def export(self, conversation_id: Any) -> bool:
        """Ask where, then write the conversation there on a worker thread."""
        if conversation_id is None or self.busy:
            return False
        title = self._store.get_conversation(conversation_id).title
        path = self.choose_export_path(safe_file_stem(title))
        if not path:
            return False
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".md")
        store = self._store
        return self._run(transfer_job(lambda: export_conversation(store, conversation_id, target),
                                     "export", self))

    def import_(self) -> bool:
        """Ask for an exported JSON file and add its conversation."""
        if self.busy:
            return False
        path = self.choose_import_path()
        if not path:
            return False
        store = self._store
        return self._run(transfer_job(lambda: import_conversation(store, Path(path)), "import", self))

    def edit_overrides(self, conversation_id: Any) -> bool:
        """The conversation's own system prompt and preset (a small dialog)."""
        if conversation_id is None:
            return False
        conversation = self._store.get_conversation(conversation_id)
        dialog = ConversationSettingsDialog(
            conversation.title, conversation.system_prompt, conversation.preset,
            str(self._settings.system_prompt or ""), self._parent)
        try:
            if not self.edit_overrides_dialog(dialog):
                return False
            prompt, preset = dialog.values()
        finally:
            dialog.deleteLater()
        self._store.set_overrides(conversation_id, system_prompt=prompt, preset=preset)
        self.sig_overrides_changed.emit(conversation_id)
        return True

    def wait(self, msecs: int = 30_000) -> None:
        """Let a running export/import end (window closing)."""
        if self.job is not None:
            self.job.wait(msecs)

    # ---- internals --------------------------------------------------------------------------

    def _run(self, job: Operation) -> bool:
        self.job = job
        job.sig_succeeded.connect(self._on_job_finished)
        job.sig_failed.connect(self._on_job_failed)
        job.start()
        return True

    def _end_job(self) -> None:
        if self.job is not None:
            self.job.wait()
            self.job.deleteLater()
            self.job = None

    def _on_job_finished(self, result: Any) -> None:
        self._end_job()
        if isinstance(result, Path):
            self.sig_exported.emit(str(result))
        else:
            self.sig_imported.emit(result.id)

    def _on_job_failed(self, message: str) -> None:
        self._end_job()
        self.sig_failed.emit(message)

    def _ask_export_path(self, stem: str) -> str | None:
        start = str(Path.home() / f"{stem}.md")
        path, chosen = QFileDialog.getSaveFileName(self._parent, "Export conversation", start,
                                                   EXPORT_FILTERS)
        if path and not Path(path).suffix:
            path += ".json" if "json" in chosen.lower() else ".md"
        return path or None

    def _ask_import_path(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self._parent, "Import a conversation",
                                              str(Path.home()), "Conversation JSON (*.json)")
        return path or None
