"""Model page: installed models with fit badges, servers to chat on instead, context length, GPU
layers, thinking default.

Just over 400 lines: its parts share one apply/restore cycle; the server form and list are
remote_servers.py."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from app.core.hardware.memory import Options, estimate
from app.core.hardware.planner import Machine, max_gpu_layers
from app.core.remote.servers import PATH_PREFIX, RemoteServer, find_server
from app.core.storage.settings import Settings
from app.ui.settings_pages.common import SettingsPage, form, hint, human_size, page_layout, section
from app.ui.settings_pages.model_facts import ModelFacts, ModelFactsJob, cached_facts
from app.ui.settings_pages.model_memory import context_choices, ctx_label, fit_badge, memory_text
from app.ui.settings_pages.remote_servers import RemoteServersBox

PATH_ROLE = Qt.ItemDataRole.UserRole
MMPROJ_ROLE = Qt.ItemDataRole.UserRole + 1


class ModelPage(SettingsPage):
    """Pick the active model and how it is loaded; every choice shows the memory it needs."""

    title = "Model"
    sig_facts_changed = Signal(object)  # ModelFacts of the selected model (Generation page uses it)

    def __init__(self, machine: Machine, models: list[tuple[str, str | None]],
                 active_path: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._machine = machine
        self._models = list(models)  # (model path, its projector or None)
        self._active = active_path
        self._facts: dict[str, ModelFacts] = {}
        self._job: ModelFactsJob | None = None
        self._mmproj: str | None = None
        self._loaded_path: str | None = None
        layout = page_layout(self, "Model", "The model that answers, and how it uses this "
                             "machine's memory. Changes apply when you press Apply or OK.")
        section(layout, "INSTALLED MODELS")
        self.model_list = QListWidget()
        self.model_list.setObjectName("ModelList")
        self.model_list.setAccessibleName("Installed models")
        self.model_list.setAccessibleDescription("Choose the model to chat with")
        self.model_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.model_list.setMinimumHeight(110)
        self.model_list.setMaximumHeight(190)
        layout.addWidget(self.model_list)
        row = QHBoxLayout()
        self.active_label = hint("")
        self.active_label.setAccessibleName("Model in use")
        row.addWidget(self.active_label, 1)
        self.add_button = QPushButton("Add a model file…")
        self.add_button.setAccessibleName("Add a model file")
        row.addWidget(self.add_button)
        layout.addLayout(row)
        self.switch_progress = QProgressBar()
        self.switch_progress.setObjectName("SwitchProgress")
        self.switch_progress.setAccessibleName("Model loading progress")
        self.switch_progress.setRange(0, 1000)
        self.switch_progress.setTextVisible(False)
        self.switch_progress.hide()
        layout.addWidget(self.switch_progress)
        self.switch_status = QLabel("")
        self.switch_status.setObjectName("SettingsHint")
        self.switch_status.setWordWrap(True)
        self.switch_status.hide()
        layout.addWidget(self.switch_status)

        section(layout, "SERVERS")
        self.servers = RemoteServersBox()
        layout.addWidget(self.servers)

        section(layout, "MEMORY")
        rows = form(layout)
        self.ctx_combo = QComboBox()
        self.ctx_combo.setAccessibleName("Context length")
        self.ctx_combo.setMinimumWidth(160)
        self.ctx_combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.ctx_combo.setToolTip("How much of the conversation the model can see at once")
        rows.addRow("Context length", self.ctx_combo)
        gpu_row = QHBoxLayout()
        gpu_row.setSpacing(14)
        self.gpu_auto = QCheckBox("Automatic")
        self.gpu_auto.setAccessibleName("Choose GPU layers automatically")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.setSuffix(" layers")
        self.gpu_layers.setRange(0, 999)
        gpu_row.addWidget(self.gpu_auto)
        self.gpu_layers.setFixedWidth(130)
        gpu_row.addWidget(self.gpu_layers)
        gpu_row.addStretch(1)
        rows.addRow("On the GPU", gpu_row)
        self.kv_combo = QComboBox()
        self.kv_combo.setAccessibleName("Conversation memory precision")
        self.kv_combo.addItem("Full (f16)", "f16")
        self.kv_combo.addItem("Compact (q8_0, half the memory)", "q8_0")
        self.kv_combo.setToolTip("q8_0 stores the conversation's keys and values in 8 bits: "
                                 "about half the memory, so longer contexts fit")
        rows.addRow("Conversation memory", self.kv_combo)
        self.floor_spin = QSpinBox()
        self.floor_spin.setAccessibleName("Slowest speed a recommendation may have")
        self.floor_spin.setRange(1, 200)
        self.floor_spin.setSuffix(" tok/s")
        self.floor_spin.setFixedWidth(130)
        self.floor_spin.setToolTip("Recommend the strongest model predicted to write at least "
                                   "this fast here (8 is about reading speed)")
        rows.addRow("Recommend at least", self.floor_spin)
        self.memory_label = hint("")
        self.memory_label.setAccessibleName("Memory it will need")
        rows.addRow(self.memory_label)

        section(layout, "THINKING")
        rows2 = form(layout)
        self.thinking = QCheckBox("Let the model think before it answers")
        self.thinking.setAccessibleName("Thinking on by default")
        rows2.addRow(self.thinking)
        rows2.addRow(hint("You can still switch thinking for one message in the composer."))
        layout.addStretch(1)

        self.model_list.currentItemChanged.connect(self._on_list_current_changed)
        self.servers.sig_selected.connect(self._on_servers_selected)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.ctx_combo.currentIndexChanged.connect(self._on_memory_inputs_changed)
        self.gpu_auto.toggled.connect(self._on_gpu_auto_toggled)
        self.gpu_layers.valueChanged.connect(self._on_memory_inputs_changed)
        self.kv_combo.currentIndexChanged.connect(self._on_memory_inputs_changed)
        if not machine.has_gpu:
            self.gpu_auto.setToolTip("No usable GPU was found: models run on the CPU")

    # ----- SettingsPage --------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self._loaded_path = settings.model_path
        self._mmproj = settings.mmproj_path
        models = list(self._models)
        known = {os.path.abspath(p) for p, _ in models}
        for extra in [settings.model_path, *settings.recent_models]:
            if extra and os.path.abspath(extra) not in known and Path(extra).is_file():
                models.append((extra, settings.mmproj_path if extra == settings.model_path else None))
                known.add(os.path.abspath(extra))
        self._models = models
        self.model_list.blockSignals(True)
        self.model_list.clear()
        for path, mmproj in models:
            item = QListWidgetItem(self._item_text(path))
            item.setData(PATH_ROLE, path)
            item.setData(MMPROJ_ROLE, mmproj)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, Path(path).stem)
            self.model_list.addItem(item)
            if settings.model_path and os.path.abspath(path) == os.path.abspath(settings.model_path):
                self.model_list.setCurrentItem(item)
        self.model_list.blockSignals(False)
        self._fill_contexts(settings.n_ctx)
        self.gpu_auto.setChecked(settings.n_gpu_layers is None)
        self._set_gpu_manual(settings.n_gpu_layers is not None)
        if settings.n_gpu_layers is not None:
            self.gpu_layers.setValue(settings.n_gpu_layers if settings.n_gpu_layers >= 0 else 999)
        self.thinking.setChecked(settings.enable_thinking)
        self.kv_combo.setCurrentIndex(max(0, self.kv_combo.findData(settings.kv_cache_type)))
        self.floor_spin.setValue(round(settings.min_decode_tok_s))
        self.servers.load(settings.remote_server)
        if self.servers.selected() is not None:
            self.model_list.clearSelection()
            self.model_list.setCurrentRow(-1)
        self._update_active_label()
        self._read_headers([p for p, _ in models])
        self._update_memory()

    def store(self, settings: Settings) -> None:
        server = self.selected_server()
        settings.remote_server = server.id if server is not None else None
        path = self.selected_path()
        if path is not None and path != settings.model_path:
            settings.model_path = path
            settings.mmproj_path = self._mmproj
            if path in settings.recent_models:
                settings.recent_models.remove(path)
            settings.recent_models.insert(0, path)
            del settings.recent_models[10:]
        settings.n_ctx = int(self.ctx_combo.currentData() or settings.n_ctx)
        settings.n_gpu_layers = None if self.gpu_auto.isChecked() else int(self.gpu_layers.value())
        settings.enable_thinking = self.thinking.isChecked()
        settings.kv_cache_type = str(self.kv_combo.currentData() or "f16")
        settings.min_decode_tok_s = float(self.floor_spin.value())

    def focus_chain(self) -> list[QWidget]:
        return [self.model_list, self.add_button, *self.servers.focus_chain(), self.ctx_combo, self.gpu_auto, self.gpu_layers,
                self.kv_combo, self.floor_spin, self.thinking]

    def _options(self) -> Options:
        """The context parameters the engine will load with (the KV cache type chosen here)."""
        return Options(kv_type=str(self.kv_combo.currentData() or "f16"))

    def shutdown(self) -> None:
        self.servers.shutdown()
        if self._job is not None:
            self._job.cancel()
            self._job.wait(30_000)
            self._job = None

    # ----- public --------------------------------------------------------------------------

    def selected_path(self) -> str | None:
        item = self.model_list.currentItem()
        return str(item.data(PATH_ROLE)) if item is not None else None

    def selected_server(self) -> RemoteServer | None:
        """The server chosen as the chat's model (then no installed model is chosen)."""
        return self.servers.selected()

    def selected_facts(self) -> ModelFacts | None:
        path = self.selected_path()
        return self._facts.get(path) if path else None

    def auto_gpu_layers(self) -> int:
        """The planner's layer count for the selected model and context (-1 = every layer)."""
        facts = self.selected_facts()
        if facts is None or facts.shape is None:
            return -1 if self._machine.has_gpu else 0
        g = max_gpu_layers(facts.shape, int(self.ctx_combo.currentData() or 8192), self._machine,
                           self._options())
        if g is None:
            return 0
        return -1 if g > facts.shape.n_layer else g

    def set_active(self, path: str | None) -> None:
        self._active = path
        self._update_active_label()

    def show_switch(self, fraction: float | None, message: str = "", error: bool = False) -> None:
        """Progress of a live switch (None hides the bar) and a status line."""
        self.switch_progress.setVisible(fraction is not None)
        if fraction is not None:
            self.switch_progress.setValue(int(fraction * 1000))
        self.switch_status.setObjectName("SettingsError" if error else "SettingsHint")
        self.switch_status.style().unpolish(self.switch_status)
        self.switch_status.style().polish(self.switch_status)
        self.switch_status.setText(message)
        self.switch_status.setVisible(bool(message))

    def add_model(self, path: str, mmproj: str | None = None) -> None:
        """Add a file to the list and select it (what "Add a model file…" does)."""
        for i in range(self.model_list.count()):
            if os.path.abspath(str(self.model_list.item(i).data(PATH_ROLE))) == os.path.abspath(path):
                self.model_list.setCurrentRow(i)
                return
        self._models.append((path, mmproj))
        item = QListWidgetItem(self._item_text(path))
        item.setData(PATH_ROLE, path)
        item.setData(MMPROJ_ROLE, mmproj)
        self.model_list.addItem(item)
        self.model_list.setCurrentItem(item)
        self._read_headers([path])

    # ----- internals -----------------------------------------------------------------------

    def _item_text(self, path: str) -> str:
        facts = self._facts.get(path) or cached_facts(path)
        name = Path(path).stem
        if facts is None:
            return f"{name}\nreading…"
        if facts.error:
            return f"{name}\n{facts.error}"
        badge = fit_badge(facts, self._machine, int(self.ctx_combo.currentData() or 8192),
                          self._options())
        active = " · in use" if self._active and os.path.abspath(path) == os.path.abspath(
            self._active) else ""
        return f"{name}\n{human_size(facts.size)} · {badge}{active}"

    def _read_headers(self, paths: list[str]) -> None:
        missing = []
        for path in paths:
            hit = cached_facts(path)
            if hit is not None:
                self._on_job_item(hit)
            else:
                missing.append(path)
        if not missing:
            return
        if self._job is not None:
            self._job.cancel()
            self._job.wait(30_000)
        self._job = ModelFactsJob(missing)
        self._job.sig_item.connect(self._on_job_item)
        self._job.sig_failed.connect(lambda msg: self.memory_label.setText(msg))
        self._job.start()

    def _fill_contexts(self, wanted: int) -> None:
        facts = self.selected_facts()
        choices = context_choices(facts.max_context if facts else None, wanted)
        self.ctx_combo.blockSignals(True)
        self.ctx_combo.clear()
        for n in choices:
            self.ctx_combo.addItem(ctx_label(n), n)
        index = self.ctx_combo.findData(min(wanted, choices[-1]))
        self.ctx_combo.setCurrentIndex(index if index >= 0 else len(choices) - 1)
        self.ctx_combo.blockSignals(False)

    def _update_active_label(self) -> None:
        if self._active and self._active.startswith(PATH_PREFIX):
            server = find_server(self._active.removeprefix(PATH_PREFIX), self.servers.servers())
            name = server.label if server else self._active.removeprefix(PATH_PREFIX)
        else:
            name = Path(self._active).stem if self._active else "none"
        self.active_label.setText(f"In use now: {name}")

    def _update_memory(self) -> None:
        facts = self.selected_facts()
        if self.selected_path() is None:
            self.memory_label.setText("Choose a model above.")
            return
        if facts is None:
            self.memory_label.setText("Reading the model file…")
            return
        if facts.error or facts.shape is None:
            self.memory_label.setText(facts.error or "This file is not a model.")
            return
        shape = facts.shape
        n = shape.n_layer
        self.gpu_layers.setRange(0, n + 1)
        self.gpu_layers.setSpecialValueText("")
        ctx = int(self.ctx_combo.currentData() or 8192)
        auto = self.auto_gpu_layers()
        layers = (n + 1 if auto < 0 else auto) if self.gpu_auto.isChecked() else self.gpu_layers.value()
        if not self._machine.has_gpu:
            layers = 0
        if self.gpu_auto.isChecked():
            self.gpu_layers.blockSignals(True)
            self.gpu_layers.setValue(layers)
            self.gpu_layers.blockSignals(False)
        est = estimate(shape, ctx, layers, self._options(), self._machine.has_gpu,
                       gpu_max_tensor=self._machine.gpu_max_tensor)
        self.memory_label.setText(memory_text(est, self._machine, layers))

    def _set_gpu_manual(self, manual: bool) -> None:
        # Read-only rather than disabled: the automatic choice stays legible (and readable by a
        # screen reader), it just cannot be edited.
        self.gpu_layers.setReadOnly(not manual)
        self.gpu_layers.setButtonSymbols(QSpinBox.ButtonSymbols.UpDownArrows if manual
                                         else QSpinBox.ButtonSymbols.NoButtons)

    def _refresh_items(self) -> None:
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            item.setText(self._item_text(str(item.data(PATH_ROLE))))

    # ----- reactions -----------------------------------------------------------------------

    def _on_job_item(self, facts: ModelFacts) -> None:
        self._facts[facts.path] = facts
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            if item.data(PATH_ROLE) == facts.path:
                item.setText(self._item_text(facts.path))
        if facts.path == self.selected_path():
            self._fill_contexts(int(self.ctx_combo.currentData() or 8192))
            self._update_memory()
            self.sig_facts_changed.emit(facts)

    def _on_list_current_changed(self, current: QListWidgetItem | None, _prev: object) -> None:
        if current is None:
            return
        self.servers.clear_selection()
        path = str(current.data(PATH_ROLE))
        mmproj = current.data(MMPROJ_ROLE)
        self._mmproj = str(mmproj) if mmproj else None
        self._fill_contexts(int(self.ctx_combo.currentData() or 8192))
        self._update_memory()
        self.sig_facts_changed.emit(self._facts.get(path))

    def _on_servers_selected(self, server: RemoteServer | None) -> None:
        if server is not None:  # the chat runs on the server: no installed model is chosen
            self.model_list.blockSignals(True)
            self.model_list.clearSelection()
            self.model_list.setCurrentRow(-1)
            self.model_list.blockSignals(False)
            self.memory_label.setText(f"{server.label} runs on the server: this machine's memory "
                                      "is not used.")

    def _on_add_clicked(self) -> None:
        start = os.path.dirname(self.selected_path() or "") or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Add a model file", start,
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.add_model(path)

    def _on_gpu_auto_toggled(self, checked: bool) -> None:
        self._set_gpu_manual(not checked)
        self._update_memory()

    def _on_memory_inputs_changed(self, *_args: object) -> None:
        self._update_memory()
        self._refresh_items()
