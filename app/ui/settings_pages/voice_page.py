"""Voice page: which microphone records, and the push-to-talk shortcut."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtMultimedia import QMediaDevices
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QKeySequenceEdit, QPushButton, QWidget

from app.core.storage.settings import Settings
from app.ui.settings_pages.common import SettingsPage, form, hint, page_layout, section

DEFAULT_SHORTCUT = "Ctrl+Space"


def device_id(device: object) -> str:
    """A QAudioDevice's id as the text the settings file keeps."""
    raw = device.id()  # type: ignore[attr-defined]
    return bytes(raw.data()).decode("utf-8", "replace")


class VoicePage(SettingsPage):
    """Microphone and push-to-talk."""

    title = "Voice"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._saved_id: str | None = None
        layout = page_layout(self, "Voice", "Hold the push-to-talk keys (or click the microphone "
                             "button) to record up to 30 seconds.")
        section(layout, "MICROPHONE")
        rows = form(layout)
        self.microphone = QComboBox()
        self.microphone.setAccessibleName("Microphone")
        rows.addRow("Record from", self.microphone)
        self.mic_note = hint("")
        rows.addRow(self.mic_note)

        section(layout, "SHORTCUT")
        rows2 = form(layout)
        key_row = QHBoxLayout()
        self.shortcut = QKeySequenceEdit()
        self.shortcut.setAccessibleName("Push-to-talk shortcut")
        self.shortcut.setMaximumSequenceLength(1)
        self.shortcut.setClearButtonEnabled(True)
        self.reset_shortcut = QPushButton("Default")
        self.reset_shortcut.setAccessibleName("Reset the push-to-talk shortcut")
        key_row.addWidget(self.shortcut, 1)
        key_row.addWidget(self.reset_shortcut)
        rows2.addRow("Push to talk", key_row)
        rows2.addRow(hint("Click the box and press the keys to use; hold them to record."))
        layout.addStretch(1)

        self._devices = QMediaDevices(self)
        self._devices.audioInputsChanged.connect(self._on_devices_audio_inputs_changed)
        self.reset_shortcut.clicked.connect(
            lambda: self.shortcut.setKeySequence(QKeySequence(DEFAULT_SHORTCUT)))

    def load(self, settings: Settings) -> None:
        self._saved_id = settings.microphone_id
        self._fill_devices(settings.microphone_id)
        self.shortcut.setKeySequence(QKeySequence(settings.push_to_talk_shortcut))

    def store(self, settings: Settings) -> None:
        data = self.microphone.currentData()
        settings.microphone_id = str(data) if data else None
        text = self.shortcut.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        settings.push_to_talk_shortcut = text or DEFAULT_SHORTCUT

    def focus_chain(self) -> list[QWidget]:
        return [self.microphone, self.shortcut, self.reset_shortcut]

    def _fill_devices(self, wanted: str | None) -> None:
        self.microphone.blockSignals(True)
        self.microphone.clear()
        default = QMediaDevices.defaultAudioInput()
        default_name = default.description() if not default.isNull() else ""
        self.microphone.addItem(
            f"System default ({default_name})" if default_name else "System default", None)
        for device in QMediaDevices.audioInputs():
            self.microphone.addItem(device.description(), device_id(device))
        index = self.microphone.findData(wanted) if wanted else 0
        if wanted and index < 0:
            # Unplugged now: keep the choice visible so saving does not silently forget it.
            self.microphone.addItem(f"{wanted} (not connected)", wanted)
            index = self.microphone.count() - 1
        self.microphone.setCurrentIndex(max(0, index))
        self.microphone.blockSignals(False)
        count = self.microphone.count() - 1
        self.mic_note.setText("No microphone was found. Plug one in; it appears here at once."
                              if not QMediaDevices.audioInputs() else
                              f"{count} input{'s' if count != 1 else ''} found.")

    def _on_devices_audio_inputs_changed(self) -> None:
        self._fill_devices(self.microphone.currentData() or self._saved_id)
