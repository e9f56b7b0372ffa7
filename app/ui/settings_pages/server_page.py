"""Server page: the OpenAI-compatible API over the loaded model, its port, and other devices' key."""

from __future__ import annotations

import secrets
from typing import Any

from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.core.storage.settings import Settings
from app.server.keys import load_key, save_key
from app.services.api_server import LOOPBACK, lan_address
from app.ui.settings_pages.common import SettingsPage, form, hint, page_layout, section

NEEDS_KEY = ("Create an API key first: other devices must send it with every request, so "
             "nobody else on the network can use your model.")


class ServerPage(SettingsPage):
    """On/off, port, model switching by requests, the URL; other devices only with a key."""

    title = "Server"

    def __init__(self, server: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.server = server  # the window's ApiServer (None: the page only edits settings)
        layout = page_layout(
            self, "Server",
            "Editors, scripts and agents can use the model loaded here through an "
            "OpenAI-compatible API (/v1/chat/completions). The chat keeps working: requests "
            "take turns on the same model.")
        section(layout, "API SERVER")
        rows = form(layout)
        self.enabled = QCheckBox("Serve the API")
        self.enabled.setAccessibleName("Serve the API")
        rows.addRow(self.enabled)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setAccessibleName("Port")
        self.port.setMaximumWidth(110)
        rows.addRow("Port", self.port)
        self.allow_switch = QCheckBox("Let API requests switch models")
        self.allow_switch.setAccessibleName("Let API requests switch models")
        self.allow_switch.setToolTip("A request naming another installed model loads it in "
                                     "place of the one in the window.")
        rows.addRow(self.allow_switch)
        url_row = QHBoxLayout()
        self.url = QLineEdit()
        self.url.setReadOnly(True)
        self.url.setAccessibleName("API address")
        self.copy_url = QPushButton("Copy")
        self.copy_url.setAccessibleName("Copy the API address")
        url_row.addWidget(self.url, 1)
        url_row.addWidget(self.copy_url)
        rows.addRow("Address", url_row)
        self.state = QLabel("")
        self.state.setObjectName("SettingsHint")
        self.state.setWordWrap(True)
        self.state.setAccessibleName("Server state")
        rows.addRow(self.state)

        section(layout, "OTHER DEVICES")
        lan_rows = form(layout)
        self.lan = QCheckBox("Allow other devices on the network")
        self.lan.setAccessibleName("Allow other devices on the network")
        lan_rows.addRow(self.lan)
        key_row = QHBoxLayout()
        self.key = QLineEdit()
        self.key.setReadOnly(True)
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("API key")
        self.key.setPlaceholderText("No key yet")
        self.show_key = QPushButton("Show")
        self.show_key.setCheckable(True)
        self.show_key.setAccessibleName("Show the API key")
        self.copy_key = QPushButton("Copy")
        self.copy_key.setAccessibleName("Copy the API key")
        self.create_key = QPushButton("Create key")
        self.create_key.setAccessibleName("Create an API key")
        for each in (self.key, self.show_key, self.copy_key, self.create_key):
            key_row.addWidget(each, 1 if each is self.key else 0)
        lan_rows.addRow("API key", key_row)
        self.lan_error = QLabel("")
        self.lan_error.setObjectName("SettingsError")
        self.lan_error.setWordWrap(True)
        self.lan_error.setVisible(False)
        lan_rows.addRow(self.lan_error)
        layout.addWidget(hint(
            "Other devices must send the key (Authorization: Bearer KEY). It is kept in the "
            "config folder, readable only by you, and never written to logs. On this computer "
            "alone (127.0.0.1) no key is needed."))
        layout.addStretch(1)

        self.enabled.toggled.connect(self._refresh)
        self.port.valueChanged.connect(self._refresh)
        self.lan.toggled.connect(self._on_lan_toggled)
        self.copy_url.clicked.connect(lambda: self._copy(self.url.text(), "Address copied"))
        self.copy_key.clicked.connect(lambda: self._copy(self.key.text(), "Key copied"))
        self.show_key.toggled.connect(self._on_show_key_toggled)
        self.create_key.clicked.connect(self._on_create_key_clicked)
        if server is not None:
            server.sig_state_changed.connect(self._refresh)
        self._show_key_state()

    # ---- settings --------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self.enabled.setChecked(settings.server_enabled)
        self.port.setValue(settings.server_port)
        self.allow_switch.setChecked(settings.server_allow_switch)
        self.lan.setChecked(settings.server_lan and load_key() is not None)
        self._say_lan("")
        self._refresh()

    def store(self, settings: Settings) -> None:
        settings.server_enabled = self.enabled.isChecked()
        settings.server_port = self.port.value()
        settings.server_allow_switch = self.allow_switch.isChecked()
        settings.server_lan = self.lan.isChecked() and load_key() is not None

    def focus_chain(self) -> list[QWidget]:
        return [self.enabled, self.port, self.allow_switch, self.url, self.copy_url, self.lan,
                self.key, self.show_key, self.copy_key, self.create_key]

    # ---- reactions -------------------------------------------------------------------------

    def _on_lan_toggled(self, on: bool) -> None:
        if on and load_key() is None:
            self.lan.setChecked(False)  # refused: never reachable from the network without a key
            self._say_lan(NEEDS_KEY)
            return
        self._say_lan("")
        self._refresh()

    def _say_lan(self, text: str) -> None:
        self.lan_error.setText(text)
        self.lan_error.setVisible(bool(text))

    def _on_create_key_clicked(self) -> None:
        save_key(secrets.token_urlsafe(32))
        self._say_lan("")
        self._show_key_state()
        if self.server is not None:
            self.server.reload_key()  # a LAN server checks the new key from now on

    def _on_show_key_toggled(self, shown: bool) -> None:
        self.key.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.show_key.setText("Hide" if shown else "Show")

    def _show_key_state(self) -> None:
        key = load_key()
        self.key.setText(key or "")
        self.create_key.setText("New key" if key else "Create key")
        self.copy_key.setEnabled(key is not None)
        self.show_key.setEnabled(key is not None)

    def _copy(self, text: str, done: str) -> None:
        if text:
            QApplication.clipboard().setText(text)
            self.state.setText(done)

    def _refresh(self) -> None:
        server = self.server
        running_url = server.url if server is not None else None
        host = lan_address() if self.lan.isChecked() else LOOPBACK
        self.url.setText(running_url or f"http://{host}:{self.port.value()}/v1")
        error = server.error if server is not None else ""
        if error:
            text, name = error, "SettingsError"
        elif running_url:
            live = server.live if server is not None else 0
            text = f"Running at {running_url}" + (f" · {live} request{'s' * (live != 1)} now"
                                                  if live else "")
            name = "SettingsOk"
        elif server is not None and server.plan.enabled:
            text, name = "Starting…", "SettingsHint"
        else:
            text, name = "Off. Turn it on and press Apply.", "SettingsHint"
        self.state.setText(text)
        if self.state.objectName() != name:
            self.state.setObjectName(name)
            self.state.style().unpolish(self.state)
            self.state.style().polish(self.state)
