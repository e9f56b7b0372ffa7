"""ToolsService: MCP calls answered by a Qt signal on the GUI thread; stale answers dropped."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.core.tools import StdioServer, ToolResult
from app.services.tools import ToolsService
from tests.e2e.test_mcp_servers import SERVER_SOURCE

TIME = StdioServer("time", sys.executable, ("-m", "mcp_server_time", "--local-timezone", "UTC"))


def test_call_result_arrives_on_the_gui_thread(qtbot: QtBot) -> None:
    service = ToolsService(call_timeout_s=20)
    try:
        with qtbot.waitSignal(service.sig_ready, timeout=60_000):
            service.configure([TIME])
        assert service.ready and [s.state for s in service.statuses()] == ["running"]
        threads: list[threading.Thread] = []
        service.sig_call_finished.connect(lambda *_: threads.append(threading.current_thread()))
        with qtbot.waitSignal(service.sig_call_finished, timeout=30_000) as blocker:
            service.call("c1", "time", "get_current_time", {"timezone": "Europe/Paris"})
        call_id, result = blocker.args
        assert call_id == "c1" and isinstance(result, ToolResult) and not result.is_error
        assert result.content["timezone"] == "Europe/Paris"
        assert threads == [threading.main_thread()]
        with qtbot.waitSignal(service.sig_call_finished, timeout=30_000) as blocker:
            service.call("c2", "nowhere", "x", {})
        assert blocker.args[1].is_error and "'nowhere' is not running" in blocker.args[1].content
    finally:
        service.shutdown()


def test_reconfigure_drops_the_old_servers_answers(qtbot: QtBot, tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER_SOURCE)
    service = ToolsService()
    try:
        with qtbot.waitSignal(service.sig_ready, timeout=60_000):
            service.configure([StdioServer("local", sys.executable, (str(script), "stdio"))])
        got: list[tuple[str, ToolResult]] = []
        service.sig_call_finished.connect(lambda call_id, r: got.append((call_id, r)))
        service.call("old", "local", "hang", {})  # still pending when the servers change
        with qtbot.waitSignal(service.sig_ready, timeout=60_000):
            service.configure([])
        # The old hub closes in the background; its pending call ends with "connection
        # closed", which must not reach the new configuration.
        for thread in threading.enumerate():
            if thread.name == "mcp-hub-close":
                thread.join(30)
        with qtbot.waitSignal(service.sig_call_finished, timeout=10_000):
            service.call("new", "local", "add", {"a": 1, "b": 2})
        assert [call_id for call_id, _ in got] == ["new"]
        assert "not configured" in str(got[0][1].content)
    finally:
        service.shutdown()
