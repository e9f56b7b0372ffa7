"""Generation page: system prompt, sampling values, presets, and the model's own defaults."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.core.storage.settings import PRESETS, Settings
from app.ui.settings_pages.common import SettingsPage, form, hint, page_layout, section
from app.ui.settings_pages.model_facts import ModelFacts, sampling_defaults

CUSTOM = "Custom"
NUMBER_WIDTH = 120
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")


def _double(name: str, low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setAccessibleName(name)
    box.setFixedWidth(NUMBER_WIDTH)
    return box


class GenerationPage(SettingsPage):
    """How the model writes: instructions, randomness, length."""

    title = "Generation"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._facts: ModelFacts | None = None
        self._applying_preset = False
        layout = page_layout(self, "Generation", "How the model writes its answers. Balanced is "
                             "what Google recommends for Gemma.")
        section(layout, "SYSTEM PROMPT")
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setAccessibleName("System prompt")
        self.system_prompt.setPlaceholderText("Instructions the model follows in every chat, "
                                              "e.g. \"Answer briefly, in British English.\"")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setFixedHeight(84)
        layout.addWidget(self.system_prompt)

        section(layout, "SAMPLING")
        rows = form(layout)
        preset_row = QHBoxLayout()
        self.preset = QComboBox()
        self.preset.setAccessibleName("Preset")
        for name in (*PRESETS, CUSTOM):
            self.preset.addItem(name, name)
        self.reset_button = QPushButton("Reset to the model's defaults")
        self.reset_button.setAccessibleName("Reset to the model's defaults")
        preset_row.addWidget(self.preset, 1)
        preset_row.addWidget(self.reset_button)
        rows.addRow("Preset", preset_row)
        self.temperature = _double("Temperature", 0.0, 2.0, 0.05)
        self.top_p = _double("Top-p", 0.0, 1.0, 0.01)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.top_k.setAccessibleName("Top-k")
        self.top_k.setSpecialValueText("off")
        self.top_k.setFixedWidth(NUMBER_WIDTH)
        self.min_p = _double("Min-p", 0.0, 1.0, 0.01)
        self.repeat_penalty = _double("Repeat penalty", 0.5, 2.0, 0.01)
        rows.addRow("Temperature", self.temperature)
        rows.addRow("Top-p", self.top_p)
        rows.addRow("Top-k", self.top_k)
        rows.addRow("Min-p", self.min_p)
        rows.addRow("Repeat penalty", self.repeat_penalty)
        self.defaults_note = hint("")
        self.defaults_note.setAccessibleName("Where the defaults come from")
        rows.addRow(self.defaults_note)

        section(layout, "LENGTH")
        rows2 = form(layout)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 262144)
        self.max_tokens.setSingleStep(256)
        self.max_tokens.setSuffix(" tokens")
        self.max_tokens.setAccessibleName("Longest answer")
        self.max_tokens.setFixedWidth(NUMBER_WIDTH + 40)
        rows2.addRow("Longest answer", self.max_tokens)
        layout.addStretch(1)

        self.preset.currentIndexChanged.connect(self._on_preset_changed)
        self.reset_button.clicked.connect(self.reset_to_model_defaults)
        for box in (self.temperature, self.top_p, self.top_k, self.min_p, self.repeat_penalty):
            box.valueChanged.connect(self._on_value_changed)
        self._update_note()

    # ----- SettingsPage --------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self._applying_preset = True
        self.system_prompt.setPlainText(settings.system_prompt)
        self._set_values({name: getattr(settings, name) for name in SAMPLING_FIELDS})
        self.max_tokens.setValue(settings.max_tokens)
        index = self.preset.findData(settings.preset)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.findData(CUSTOM))
        self._applying_preset = False

    def store(self, settings: Settings) -> None:
        settings.system_prompt = self.system_prompt.toPlainText().strip()
        for name, value in self.values().items():
            setattr(settings, name, value)
        settings.preset = str(self.preset.currentData())
        settings.max_tokens = int(self.max_tokens.value())

    def focus_chain(self) -> list[QWidget]:
        return [self.system_prompt, self.preset, self.reset_button, self.temperature, self.top_p,
                self.top_k, self.min_p, self.repeat_penalty, self.max_tokens]

    # ----- public --------------------------------------------------------------------------

    def values(self) -> dict[str, float | int]:
        return {
            "temperature": round(self.temperature.value(), 4),
            "top_p": round(self.top_p.value(), 4),
            "top_k": int(self.top_k.value()),
            "min_p": round(self.min_p.value(), 4),
            "repeat_penalty": round(self.repeat_penalty.value(), 4),
        }

    def set_model_facts(self, facts: ModelFacts | None) -> None:
        """The selected model changed (its GGUF may carry its own sampling defaults)."""
        self._facts = facts
        self._update_note()

    def reset_to_model_defaults(self) -> None:
        values, _ = sampling_defaults(self._facts)
        self._set_values(values)
        self._select_matching_preset()

    # ----- internals -----------------------------------------------------------------------

    def _set_values(self, values: dict[str, float | int]) -> None:
        was = self._applying_preset
        self._applying_preset = True
        self.temperature.setValue(float(values["temperature"]))
        self.top_p.setValue(float(values["top_p"]))
        self.top_k.setValue(int(values["top_k"]))
        self.min_p.setValue(float(values["min_p"]))
        self.repeat_penalty.setValue(float(values["repeat_penalty"]))
        self._applying_preset = was

    def _select_matching_preset(self) -> None:
        current = self.values()
        name = next((n for n, v in PRESETS.items()
                     if all(abs(float(v[k]) - float(current[k])) < 1e-6 for k in SAMPLING_FIELDS)),
                    CUSTOM)
        self._applying_preset = True
        self.preset.setCurrentIndex(self.preset.findData(name))
        self._applying_preset = False

    def _update_note(self) -> None:
        values, from_file = sampling_defaults(self._facts)
        summary = (f"temperature {values['temperature']:g}, top-p {values['top_p']:g}, "
                   f"top-k {values['top_k']}")
        if from_file and self._facts is not None:
            self.defaults_note.setText(f"{self._facts.name} recommends {summary}.")
        else:
            self.defaults_note.setText(f"The model file names no defaults; Gemma's are {summary}.")

    def _on_preset_changed(self, _index: int) -> None:
        name = str(self.preset.currentData())
        if self._applying_preset or name not in PRESETS:
            return
        self._set_values(PRESETS[name])

    def _on_value_changed(self, *_args: object) -> None:
        if not self._applying_preset:
            self._select_matching_preset()
