"""Settings → Model → Servers: OpenAI-compatible servers the chat can run on instead of this machine.

"Add a server" takes a base URL, an API key (kept owner-only on disk, never logged) and one of the
server's models, listed by asking its /v1/models in the background. "Test connection" says in
words what happened: connected, connection refused, key refused (401), or a model it does not have.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.remote.servers import RemoteServer, load_servers, normalize_url, save_servers
from app.services.operations import Operation
from app.services.remote_engine import check_server

ID_ROLE = Qt.ItemDataRole.UserRole
FETCH_DELAY_MS = 600  # after the URL or key stops changing, the model list is asked for


class RemoteServersBox(QWidget):
    """The saved servers (one may be chosen as the chat's model) and the Add a server form."""

    sig_selected = Signal(object)  # the RemoteServer chosen in the list, or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._servers: list[RemoteServer] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.server_list = QListWidget()
        self.server_list.setObjectName("ServerList")
        self.server_list.setAccessibleName("Servers")
        self.server_list.setAccessibleDescription("Choose a server to chat with its model")
        self.server_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.server_list.setMaximumHeight(96)
        layout.addWidget(self.server_list)
        row = QHBoxLayout()
        self.empty_label = QLabel("No servers yet. A server lets a bigger machine (vLLM, SGLang, "
                                  "llama-server) answer in this window.")
        self.empty_label.setObjectName("SettingsHint")
        self.empty_label.setWordWrap(True)
        row.addWidget(self.empty_label, 6)
        row.addStretch(1)  # the buttons keep their size once the list replaces the hint
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove the chosen server")
        self.remove_button.setEnabled(False)
        row.addWidget(self.remove_button)
        self.add_button = QPushButton("Add a server…")
        self.add_button.setAccessibleName("Add a server")
        row.addWidget(self.add_button)
        layout.addLayout(row)

        self.form_frame = QFrame()
        self.form_frame.setObjectName("SettingsCard")
        rows = QFormLayout(self.form_frame)
        rows.setContentsMargins(14, 12, 14, 12)
        rows.setHorizontalSpacing(18)
        rows.setVerticalSpacing(10)
        self.url = QLineEdit()
        self.url.setAccessibleName("Server address")
        self.url.setPlaceholderText("http://gpu-box:8000")
        rows.addRow("Address", self.url)
        self.key = QLineEdit()
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("Only if the server asks for one")
        rows.addRow("API key", self.key)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setAccessibleName("Model on the server")
        self.model.setMinimumWidth(240)
        rows.addRow("Model", self.model)
        self.result = QLabel("")
        self.result.setObjectName("SettingsHint")
        self.result.setWordWrap(True)
        self.result.setAccessibleName("Connection test result")
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rows.addRow(self.result)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.test_button = QPushButton("Test connection")
        self.test_button.setAccessibleName("Test the connection")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel adding a server")
        self.save_button = QPushButton("Add server")
        self.save_button.setAccessibleName("Add this server")
        for button in (self.test_button, self.cancel_button, self.save_button):
            buttons.addWidget(button)
        rows.addRow(buttons)
        self._show_form(False)
        layout.addWidget(self.form_frame)

        self._fetch_timer = QTimer(self)
        self._fetch_timer.setSingleShot(True)
        self._fetch_timer.setInterval(FETCH_DELAY_MS)
        self._fetch_timer.timeout.connect(self._fetch_models)
        self._probe = Operation(self._probe_work, name="remote-server-test", parent=self)
        self._probe.sig_succeeded.connect(self._on_probe_succeeded)
        self._probe.sig_failed.connect(self._on_probe_failed)
        self._probing: RemoteServer | None = None
        self._testing = False

        self.server_list.currentItemChanged.connect(self._on_list_current_changed)
        self.add_button.clicked.connect(self.open_form)
        self.remove_button.clicked.connect(self.remove_selected)
        self.cancel_button.clicked.connect(self._close_form)
        self.test_button.clicked.connect(self.test_connection)
        self.save_button.clicked.connect(self.save_form)
        self.url.textEdited.connect(self._on_address_edited)
        self.key.textEdited.connect(self._on_address_edited)

    # ----- public --------------------------------------------------------------------------

    def load(self, selected_id: str | None) -> None:
        self._servers = load_servers()
        self._fill(selected_id)

    def servers(self) -> list[RemoteServer]:
        return list(self._servers)

    def selected(self) -> RemoteServer | None:
        item = self.server_list.currentItem()
        if item is None or not item.isSelected():
            return None
        wanted = item.data(ID_ROLE)
        return next((s for s in self._servers if s.id == wanted), None)

    def clear_selection(self) -> None:
        self.server_list.blockSignals(True)
        self.server_list.clearSelection()
        self.server_list.setCurrentRow(-1)
        self.server_list.blockSignals(False)
        self.remove_button.setEnabled(False)

    def open_form(self) -> None:
        self.url.clear()
        self.key.clear()
        self.model.clear()
        self.result.setText("")
        self._show_form(True)
        self.url.setFocus()

    def test_connection(self) -> None:
        """Ask the server for its models now; the result line says what happened."""
        server = self._form_server()
        if server is None:
            self._show_result("Type the server's address first.", error=True)
            return
        self._testing = True
        self._start_probe(server)

    def save_form(self) -> RemoteServer | None:
        """Add the form's server to the list (saved at once, owner-only) and choose it."""
        server = self._form_server()
        if server is None or not server.model:
            self._show_result("Fill in the address and choose a model first.", error=True)
            return None
        self._servers = [s for s in self._servers if s.id != server.id] + [server]
        save_servers(self._servers)
        self._close_form()
        self._fill(server.id)
        self.sig_selected.emit(server)
        return server

    def remove_selected(self) -> None:
        server = self.selected()
        if server is None:
            return
        self._servers = [s for s in self._servers if s.id != server.id]
        save_servers(self._servers)
        self._fill(None)
        self.sig_selected.emit(None)

    def shutdown(self) -> None:
        self._fetch_timer.stop()
        self._probe.cancel()
        self._probe.wait(15_000)

    def focus_chain(self) -> list[QWidget]:
        chain: list[QWidget] = [] if self.server_list.isHidden() else [self.server_list]
        chain += [self.remove_button, self.add_button]
        if not self.form_frame.isHidden():  # the form's fields, while it is open
            chain += [self.url, self.key, self.model, self.test_button, self.cancel_button,
                      self.save_button]
        return chain

    # ----- internals -----------------------------------------------------------------------

    def _form_server(self) -> RemoteServer | None:
        url = self.url.text().strip()
        if not url:
            return None
        return RemoteServer(normalize_url(url), self.model.currentText().strip(),
                            self.key.text().strip() or None)

    def _fill(self, selected_id: str | None) -> None:
        self.server_list.blockSignals(True)
        self.server_list.clear()
        for server in self._servers:
            item = QListWidgetItem(server.label)
            item.setData(ID_ROLE, server.id)
            item.setToolTip(f"{server.model} at {server.base_url}"
                            + (" · with an API key" if server.api_key else ""))
            self.server_list.addItem(item)
            if server.id == selected_id:
                self.server_list.setCurrentItem(item)
                item.setSelected(True)
        self.server_list.blockSignals(False)
        self.server_list.setVisible(bool(self._servers))
        self.server_list.setEnabled(bool(self._servers))
        self.empty_label.setVisible(not self._servers)
        self.remove_button.setEnabled(self.selected() is not None)

    def _close_form(self) -> None:
        self._fetch_timer.stop()
        self._show_form(False)

    def _show_form(self, shown: bool) -> None:
        # Hidden parts are disabled too: nothing out of sight takes the keyboard focus.
        self.form_frame.setVisible(shown)
        self.form_frame.setEnabled(shown)
        self.add_button.setEnabled(not shown)

    def _show_result(self, text: str, error: bool = False) -> None:
        self.result.setObjectName("SettingsError" if error else "SettingsHint")
        self.result.style().unpolish(self.result)
        self.result.style().polish(self.result)
        self.result.setText(text)

    def _fetch_models(self) -> None:
        server = self._form_server()
        if server is not None:
            self._start_probe(RemoteServer(server.base_url, "", server.api_key))

    def _start_probe(self, server: RemoteServer) -> None:
        self._probing = server
        self._show_result(f"Asking {server.host} for its models…")
        self._probe.start()

    def _probe_work(self, _ctx: object) -> list[str]:
        server = self._probing
        assert server is not None
        return check_server(server)

    # ----- reactions -----------------------------------------------------------------------

    def _on_list_current_changed(self, current: QListWidgetItem | None, _prev: object) -> None:
        self.remove_button.setEnabled(current is not None)
        if current is not None:
            current.setSelected(True)
            self.sig_selected.emit(self.selected())

    def _on_address_edited(self, _text: str) -> None:
        self._testing = False
        self._fetch_timer.start()

    def _on_probe_succeeded(self, models: object) -> None:
        names = [str(m) for m in models] if isinstance(models, list) else []
        typed = self.model.currentText().strip()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems(names)
        if typed:
            self.model.setCurrentText(typed)
        self.model.blockSignals(False)
        server = self._probing
        host = server.host if server is not None else "The server"
        count = f"{len(names)} model{'s' if len(names) != 1 else ''}"
        if self._testing and server is not None and server.model:
            self._show_result(f"Connected to {host}: {server.model} is ready ({count} in all).")
        else:
            self._show_result(f"Connected to {host}: {count}. Choose one.")

    def _on_probe_failed(self, message: str) -> None:
        self._show_result(message, error=True)
