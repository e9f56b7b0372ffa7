"""Tools page: MCP servers (desktop-client JSON), their state and tools, a switch per tool."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from app.core.storage.settings import Settings
from app.core.tools.config import McpConfigError, ServerConfig, parse_mcp_config
from app.services.tools import ToolsService
from app.ui import theme
from app.ui.settings_pages.common import SettingsPage, form, hint, page_layout, section

EXAMPLE = '{\n  "mcpServers": {\n    "time": {"command": "mcp-server-time", "args": []}\n  }\n}'
_KEY_ROLE = Qt.ItemDataRole.UserRole


class ToolsPage(SettingsPage):
    """MCP servers started in the background; each tool can be switched off."""

    title = "Tools"

    def __init__(self, service: ToolsService | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # The app's own servers when the window runs them; a page on its own starts its own.
        service = service or ToolsService.app_wide()
        self._owns_service = service is None
        self.service = service or ToolsService(parent=self)
        self._disabled: set[str] = set()
        self._always: list[str] = []
        self._started_with: str | None = None
        layout = page_layout(
            self,
            "Tools",
            "The model can call tools from MCP servers. You are asked before each call.",
        )
        section(layout, "TOOL USE")
        rows = form(layout)
        self.enabled = QCheckBox("Let the model call tools")
        self.enabled.setAccessibleName("Let the model call tools")
        rows.addRow(self.enabled)
        self.max_steps = QSpinBox()
        self.max_steps.setRange(1, 64)
        self.max_steps.setAccessibleName("Tool steps per answer")
        rows.addRow("Tool steps per answer", self.max_steps)
        forget_row = QHBoxLayout()
        self.forget = QPushButton("Forget “always allow”")
        self.forget.setAccessibleName("Forget the tools always allowed")
        forget_row.addWidget(self.forget)
        forget_row.addStretch(1)
        rows.addRow(forget_row)

        section(layout, "MCP SERVERS")
        self.config = QPlainTextEdit()
        self.config.setObjectName("ToolsConfig")
        self.config.setAccessibleName("MCP servers (JSON)")
        self.config.setFont(theme.mono_font())
        self.config.setPlaceholderText(EXAMPLE)
        self.config.setMinimumHeight(130)
        layout.addWidget(self.config)
        check_row = QHBoxLayout()
        self.config_error = QLabel("")
        self.config_error.setObjectName("SettingsError")
        self.config_error.setWordWrap(True)
        self.start_button = QPushButton("Start servers")
        self.start_button.setAccessibleName("Start the MCP servers")
        check_row.addWidget(self.config_error, 1)
        check_row.addWidget(self.start_button)
        layout.addLayout(check_row)
        layout.addWidget(
            hint(
                'Same shape as other MCP clients: {"mcpServers": {name: '
                '{"command", "args", "env"} or {"url", "headers"}}}.'
            )
        )

        self.tree = QTreeWidget()
        self.tree.setObjectName("ToolsTree")
        self.tree.setAccessibleName("Servers and tools")
        self.tree.setHeaderLabels(["Server / tool", "State"])
        self.tree.setColumnWidth(0, 300)
        self.tree.setMinimumHeight(160)
        layout.addWidget(self.tree, 1)

        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.forget.clicked.connect(self._on_forget_clicked)
        self.tree.itemChanged.connect(self._on_tree_item_changed)
        self.service.sig_changed.connect(self._refresh)
        self.service.sig_ready.connect(self._refresh)

    # ---- settings --------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self.enabled.setChecked(settings.tools)
        self.max_steps.setValue(settings.tool_max_steps)
        self._disabled = set(settings.disabled_tools)
        self._always = list(settings.always_allowed_tools)
        self._update_forget()
        text = json.dumps({"mcpServers": settings.mcp_servers}, indent=2)
        self.config.setPlainText(text if settings.mcp_servers else "")
        self.config_error.setText("")
        if settings.mcp_servers and self._owns_service:
            self._start(text)
        self._refresh()

    def store(self, settings: Settings) -> None:
        settings.tools = self.enabled.isChecked()
        settings.tool_max_steps = self.max_steps.value()
        settings.disabled_tools = sorted(self._disabled)
        settings.always_allowed_tools = list(self._always)
        servers = self._parse(self.config.toPlainText())
        if servers is not None:  # a broken text keeps the servers that were saved
            settings.mcp_servers = {s.name: s.to_json() for s in servers}

    def focus_chain(self) -> list[QWidget]:
        return [
            self.enabled,
            self.max_steps,
            self.forget,
            self.config,
            self.start_button,
            self.tree,
        ]

    def shutdown(self) -> None:
        if self._owns_service:
            self.service.release()
        else:  # closed without Apply after "Start servers": the app's servers as applied
            self.service.restore_applied()

    # ---- servers ---------------------------------------------------------------------------

    def _parse(self, text: str) -> list[ServerConfig] | None:
        if not text.strip():
            return []
        try:
            return parse_mcp_config(json.loads(text))
        except (ValueError, McpConfigError) as exc:
            self.config_error.setText(f"Not valid: {exc}")
            return None

    def _start(self, text: str) -> None:
        servers = self._parse(text)
        if servers is None:
            return
        self.config_error.setText("")
        self._started_with = text
        self.service.configure(servers)  # starts on the hub thread; the page never waits

    def _on_start_button_clicked(self) -> None:
        self._start(self.config.toPlainText())

    def _on_forget_clicked(self) -> None:
        self._always = []
        self._update_forget()

    def _update_forget(self) -> None:
        self.forget.setEnabled(bool(self._always))
        count = f" ({len(self._always)})" if self._always else ""
        self.forget.setText(f"Forget “always allow”{count}")

    def _refresh(self) -> None:
        self.tree.blockSignals(True)
        self.tree.clear()
        for status in self.service.statuses():
            state = {"starting": "starting…", "running": "running", "stopped": "stopped"}.get(
                status.state, f"failed: {status.reason}"
            )
            server_item = QTreeWidgetItem([status.name, state])
            if status.state == "failed":
                server_item.setForeground(1, QColor(theme.color("danger")))
                server_item.setToolTip(1, status.reason)
            self.tree.addTopLevelItem(server_item)
            for tool in status.tools:
                item = QTreeWidgetItem([tool.name, tool.description.strip().split("\n")[0]])
                item.setData(0, _KEY_ROLE, tool.key)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = tool.key not in self._disabled
                item.setCheckState(0, Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                item.setToolTip(1, tool.description)
                server_item.addChild(item)
            server_item.setExpanded(True)
        self.tree.blockSignals(False)

    def _on_tree_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        key = item.data(0, _KEY_ROLE)
        if column != 0 or not key:
            return
        if item.checkState(0) == Qt.CheckState.Checked:
            self._disabled.discard(key)
        else:
            self._disabled.add(key)

    def server_rows(self) -> list[tuple[str, str, list[tuple[str, bool]]]]:
        """(server, state text, [(tool, on)]) as shown, for tests and accessibility checks."""
        rows = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            assert top is not None
            children = [top.child(j) for j in range(top.childCount())]
            tools = [
                (c.text(0), c.checkState(0) == Qt.CheckState.Checked)
                for c in children
                if c is not None
            ]
            rows.append((top.text(0), top.text(1), tools))
        return rows
