"""MCP servers for the window: the core hub behind Qt signals, never blocking the GUI thread.

Servers start on the hub's own thread; state changes and finished calls come back as
signals (queued to the receiver's thread). ``configure`` replaces the servers; results of
a replaced hub are dropped by a generation counter, so a late answer never lands in a new
configuration.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.tools.config import ServerConfig
from app.core.tools.loop import ToolResult
from app.core.tools.mcp_hub import CALL_TIMEOUT_S, START_TIMEOUT_S, McpHub, ServerStatus
from app.core.tools.registry import ToolRegistry


class ToolsService(QObject):
    """Owns the running MCP servers; ``call`` answers with ``sig_call_finished``.

    The window makes one for the whole app and registers it (``set_app_wide``): the chat's
    tool loop and Settings → Tools then use the same servers instead of starting their own.
    """

    _app_wide: ToolsService | None = None

    sig_changed = Signal()  # a server started, failed or stopped (read statuses())
    sig_ready = Signal()  # every server of the current configuration has settled
    sig_call_finished = Signal(str, object)  # call id, ToolResult

    def __init__(
        self,
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        call_timeout_s: float = CALL_TIMEOUT_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self._hub: McpHub | None = None
        self._generation = 0
        self._ready = False
        self.servers: list[ServerConfig] = []  # what the current hub was started with
        # What the applied settings ask for (set by the window); a page that tried other
        # servers and was closed unapplied goes back to these.
        self.applied: list[ServerConfig] | None = None

    @classmethod
    def app_wide(cls) -> ToolsService | None:
        """The service the window registered, if any."""
        return cls._app_wide

    @classmethod
    def set_app_wide(cls, service: ToolsService | None) -> None:
        cls._app_wide = service

    @property
    def ready(self) -> bool:
        """True once every configured server is running or failed."""
        return self._ready

    def configure(self, servers: Iterable[ServerConfig]) -> None:
        """Stop the current servers (in the background) and start these ones."""
        old = self._hub
        self.servers = list(servers)
        self._generation += 1
        generation = self._generation
        self._ready = False
        self._hub = McpHub(
            list(self.servers),
            start_timeout_s=self.start_timeout_s,
            call_timeout_s=self.call_timeout_s,
            on_change=lambda: self._emit_if_current(generation, self.sig_changed),
        )
        if old is not None:
            # Closing waits for child processes: never on the GUI thread.
            threading.Thread(target=old.close, name="mcp-hub-close", daemon=True).start()
        self._hub.start().add_done_callback(lambda _f: self._settled(generation))
        self.sig_changed.emit()

    def apply(self, servers: Iterable[ServerConfig]) -> None:
        """Run the servers of the applied settings (restarted only when they changed)."""
        self.applied = list(servers)
        if self.applied != self.servers or (self.applied and self._hub is None):
            self.configure(self.applied)

    def restore_applied(self) -> None:
        """Back to the applied settings' servers, if something else was started meanwhile."""
        if self.applied is not None and self.applied != self.servers:
            self.configure(self.applied)

    def _settled(self, generation: int) -> None:
        if generation == self._generation:
            self._ready = True
            self.sig_ready.emit()

    def _emit_if_current(self, generation: int, signal: Any, *args: Any) -> None:
        if generation == self._generation:
            signal.emit(*args)

    def statuses(self) -> list[ServerStatus]:
        """Each server's state and tools, in configuration order."""
        return self._hub.statuses() if self._hub is not None else []

    def registry(self, disabled: Iterable[str] = ()) -> ToolRegistry:
        """The running servers' tools, per-tool switches applied."""
        return self._hub.registry(disabled) if self._hub is not None else ToolRegistry()

    def call(self, call_id: str, server: str, name: str, arguments: dict[str, Any]) -> None:
        """Run a tool in the background; ``sig_call_finished(call_id, ToolResult)`` follows."""
        generation = self._generation
        if self._hub is None:
            self.sig_call_finished.emit(call_id, ToolResult.error("no MCP servers are configured"))
            return

        def done(future: concurrent.futures.Future[ToolResult]) -> None:
            result = ToolResult.error("cancelled") if future.cancelled() else future.result()
            self._emit_if_current(generation, self.sig_call_finished, call_id, result)

        self._hub.call(server, name, arguments).add_done_callback(done)

    def release(self) -> None:
        """Stop every server without waiting (for the GUI thread: a dialog closing)."""
        self._generation += 1
        self.servers = []
        old, self._hub = self._hub, None
        if old is not None:
            threading.Thread(target=old.close, name="mcp-hub-close", daemon=True).start()

    def shutdown(self) -> None:
        """Stop every server (waits for child processes to end)."""
        self._generation += 1
        self.servers = []
        if self._hub is not None:
            self._hub.close()
            self._hub = None
