"""Settings → Tools: servers start in the background, states and per-tool switches are shown."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.core.storage.settings import Settings
from app.ui import theme
from app.ui.settings_pages.tools_page import ToolsPage

SERVERS = {
    "time": {
        "command": sys.executable,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
        "env": {},
    },
    "broken": {
        "command": sys.executable,
        "args": ["-c", "raise SystemExit('bad token')"],
        "env": {},
    },
}


def test_servers_start_in_background_and_tools_switch(
    qapp: QApplication, qtbot: QtBot, tmp_path: Path
) -> None:
    theme.ThemeManager(qapp, "light").apply()
    page = ToolsPage()
    qtbot.addWidget(page)
    settings = Settings(
        mcp_servers=SERVERS,
        disabled_tools=["time/convert_time"],
        tool_max_steps=5,
        always_allowed_tools=["time/get_current_time"],
    )
    started = time.monotonic()
    with qtbot.waitSignal(page.service.sig_ready, timeout=60_000):
        page.load(settings)
        # load() returned before any server answered: the GUI thread never waits for them.
        assert time.monotonic() - started < 0.5
        assert [row[1] for row in page.server_rows()] == ["starting…", "starting…"]
    try:
        rows = {name: (state, tools) for name, state, tools in page.server_rows()}
        assert rows["time"] == ("running", [("get_current_time", True), ("convert_time", False)])
        assert rows["broken"][0].startswith("failed: ") and "bad token" in rows["broken"][0]
        assert page.max_steps.value() == 5 and page.forget.text() == "Forget “always allow” (1)"

        time_item = page.tree.topLevelItem(0)
        time_item.child(0).setCheckState(0, Qt.CheckState.Unchecked)
        time_item.child(1).setCheckState(0, Qt.CheckState.Checked)
        page.forget.click()
        edited = settings.copy()
        page.store(edited)
        assert edited.disabled_tools == ["time/get_current_time"]
        assert edited.always_allowed_tools == []
        assert edited.mcp_servers == SERVERS

        page.config.setPlainText('{"mcpServers": {"x": {}}}')
        page.start_button.click()
        assert "server 'x': needs a \"command\"" in page.config_error.text()
        page.store(edited)
        assert edited.mcp_servers == SERVERS  # a broken text keeps what was saved

        page.resize(760, 720)
        page.config.setPlainText(json.dumps({"mcpServers": SERVERS}, indent=2))
        page.config_error.setText("")
        page.show()
        qapp.processEvents()
        shot = Path("/tmp/shots") if Path("/tmp/shots").is_dir() else tmp_path
        assert page.grab().save(str(shot / "tools-settings-page.png"))
    finally:
        page.service.shutdown()


def test_settings_dialog_has_the_tools_page(qapp: QApplication, qtbot: QtBot) -> None:
    from app.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(tool_max_steps=3))
    qtbot.addWidget(dialog)
    assert dialog.tools_page in dialog.pages and dialog.tools_page.max_steps.value() == 3
    assert dialog.tools_page.server_rows() == []  # nothing configured: nothing started
    dialog.reject()
