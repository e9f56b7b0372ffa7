"""The model manager's list: a row per catalog model and imported file, kept in step with state."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.core.hardware.speed import measured_tok_s, predict_for_estimate, speed_label
from app.services.downloads import JobState
from app.ui.model_context import ModelsContext
from app.ui.model_rows import (
    AVAILABLE,
    FAILED,
    INSTALLED,
    PAUSED,
    RUNNING,
    ModelRowWidget,
    file_size,
    memory_size,
)

LOCAL_PREFIX = "local:"


def ctx_label(n: int) -> str:
    return f"{n // 1024}k"


class ModelList(QWidget):
    """Group titles and a ModelRowWidget per model; update_rows() shows the context's state."""

    sig_action = Signal(str, str)  # row key, action ("download", "pause", "use", …)

    def __init__(self, context: ModelsContext, n_ctx: Callable[[], int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = context
        self._n_ctx = n_ctx
        self.rows: dict[str, ModelRowWidget] = {}
        self.setObjectName("ModelList")
        self.list_layout = QVBoxLayout(self)
        self.list_layout.setContentsMargins(0, 0, 6, 0)
        self.list_layout.setSpacing(8)

    def rebuild(self) -> None:
        """Recreate the rows (the catalog or the imported files changed)."""
        while self.list_layout.count():
            item = self.list_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.rows.clear()
        for variant in self.ctx.catalog.variants:
            entries = [e for e in self.ctx.catalog.entries() if e.variant.id == variant.id]
            if not entries:
                continue
            self._group(f"GEMMA 4 {variant.id} · {', '.join(variant.inputs)} · "
                        f"{variant.max_context // 1024}k context")
            for entry in entries:
                self._add_row(entry.id)
        self._group("IMPORTED FILES")
        self._imported_hint = QLabel("GGUF files you import from this computer show here.")
        self._imported_hint.setObjectName("ModelsHint")
        self.list_layout.addWidget(self._imported_hint)
        for model in self.ctx.local_models():
            self._add_row(LOCAL_PREFIX + model.filename)
        self._imported_hint.setVisible(not self.ctx.local_models())
        self.list_layout.addStretch(1)
        self.update_rows()

    def _group(self, text: str) -> None:
        label = QLabel(text)
        label.setObjectName("GroupTitle")
        self.list_layout.addWidget(label)

    def _add_row(self, key: str) -> None:
        row = ModelRowWidget(key, self)
        row.sig_action.connect(self.sig_action)
        self.rows[key] = row
        self.list_layout.addWidget(row)

    def update_rows(self) -> None:
        """Fit badges, sizes, installed/in-use tags and download states of every row."""
        if set(self._local_keys()) != {k for k in self.rows if k.startswith(LOCAL_PREFIX)}:
            self.rebuild()
            return
        ctx = self._n_ctx()
        cands = self.ctx.candidates()
        best = self.ctx.recommendation().candidate
        active = os.path.abspath(str(self.ctx.settings.model_path or "")) \
            if self.ctx.settings.model_path else None
        for entry in self.ctx.catalog.entries():
            row = self.rows.get(entry.id)
            if row is None:
                continue
            plan = self.ctx.plan(entry.id, ctx, cands)
            need = plan.estimate.total if plan.estimate else 0
            paths = self.ctx.installed_paths(entry)
            size = self.ctx.download_bytes(entry)
            media = "/".join(i for i in entry.variant.inputs if i != "text") or "media"
            detail = (f"{file_size(size)} download (model + {media} projector) · "
                      f"needs {memory_size(need)} at {ctx_label(ctx)} context")
            speed = self.ctx.probe.speed
            if speed is not None and plan.estimate is not None and plan.fits:
                tok_s = predict_for_estimate(cands[entry.id].shape, plan.estimate, speed,
                                             self.ctx.settings.kv_cache_type).decode_tok_s
                detail += " · " + speed_label(tok_s, measured_tok_s(entry.file.filename))
            if not entry.repo.verified:
                detail += " · file name not yet confirmed: Refresh list checks it"
            if paths is not None and self.ctx.unverified(entry):
                detail += " · unverified: the Hub gave no sha256 to check it against"
            if not plan.fits:  # memory: the numbers are already there; disk: say what to do
                detail += (" · more than this computer has free" if plan.estimate is not None
                           else f" · {plan.explanation}")
            row.set_info(
                f"{entry.variant.id} · {entry.quant}", detail, plan.badge,
                recommended=best is not None and best.model_id == entry.id,
                installed=paths is not None,
                in_use=paths is not None and active == os.path.abspath(paths[0]),
                repo="" if entry.repo.official else entry.repo.repo_id,
            )
            self._update_state(entry.id, paths is not None, size)
        for model in self.ctx.local_models():
            row = self.rows[LOCAL_PREFIX + model.filename]
            proj = self.ctx.local_projector(model)
            row.set_info(model.filename, f"{file_size(model.size)} · imported"
                         + (" · with its image/audio projector" if proj else ""), None,
                         installed=True,
                         in_use=active == os.path.abspath(model.path))
            row.set_state(INSTALLED)

    def _update_state(self, key: str, installed: bool, size: int) -> None:
        row = self.rows[key]
        job = self.ctx.job(key)
        state = job.state if job is not None else None
        if state is JobState.RUNNING:
            row.set_state(RUNNING)
            done, total, speed, eta = job.last_progress  # type: ignore[union-attr]
            row.set_progress(done, total, speed, eta)
        elif state is JobState.PAUSED:
            row.set_state(PAUSED)
            done, total, speed, eta = job.last_progress  # type: ignore[union-attr]
            row.set_progress(done, total, speed, eta, paused=True)
        elif state is JobState.FAILED and not installed:
            row.set_state(FAILED, row.message.text())
        elif installed:
            row.set_state(INSTALLED)
        elif (partial := self.ctx.partial_bytes(self.ctx.catalog.entry(key))) > 0:
            row.set_state(PAUSED)  # a download interrupted by closing the app
            row.set_progress(partial, size, 0.0, -1.0, paused=True)
        else:
            row.set_state(AVAILABLE)
        row.buttons["download"].setEnabled(not self.ctx.offline)
        row.buttons["resume"].setEnabled(not self.ctx.offline)

    def _local_keys(self) -> list[str]:
        return [LOCAL_PREFIX + m.filename for m in self.ctx.local_models()]
