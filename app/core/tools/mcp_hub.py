"""MCP server connections on one background asyncio thread (official ``mcp`` SDK, no Qt).

Each server gets a task that owns its transport and session for its whole life (the SDK's
anyio contexts must be entered and left by the same task). Callers on any other thread get
``concurrent.futures.Future`` objects; nothing here blocks the caller's thread. Every
startup and call has a timeout, so a crashed or hanging server ends as an error result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types.jsonrpc import CONNECTION_CLOSED

from app.core.tools.config import HttpServer, ServerConfig
from app.core.tools.loop import ToolResult
from app.core.tools.registry import ToolRegistry, ToolSpec

START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0

State = Literal["starting", "running", "failed", "stopped"]


@dataclass
class ServerStatus:
    """What the settings page shows for one server."""

    name: str
    state: State = "starting"
    reason: str = ""
    tools: list[ToolSpec] = field(default_factory=list)


class _Connection:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.status = ServerStatus(config.name)
        self.session: ClientSession | None = None
        self.closing = asyncio.Event()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.errlog: IO[str] | None = None

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self.errlog.seek(0)
            lines = [ln.strip() for ln in self.errlog.read().splitlines() if ln.strip()]
            return lines[-1][:300] if lines else ""
        return ""


def _result_of(result: Any) -> ToolResult:
    """Our ToolResult from the SDK's CallToolResult (structured output wins over text)."""
    texts: list[str] = []
    for part in getattr(result, "content", None) or []:
        kind = getattr(part, "type", "")
        texts.append(str(getattr(part, "text", "")) if kind == "text" else f"[{kind}]")
    text = "\n".join(texts)
    if getattr(result, "is_error", False):
        return ToolResult.error(text or "the tool reported an error")
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict) and structured:
        return ToolResult(dict(structured))
    return ToolResult(text)


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_timed_out(e) for e in exc.exceptions)
    return isinstance(exc, TimeoutError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, (TimeoutError, OSError)) else f"{type(exc).__name__}: {text}"


class McpHub:
    """All configured servers; ``on_change`` is called (on the hub thread) on state changes."""

    def __init__(
        self,
        servers: Iterable[ServerConfig],
        *,
        start_timeout_s: float = START_TIMEOUT_S,
        call_timeout_s: float = CALL_TIMEOUT_S,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self.on_change = on_change
        # Created here so statuses() shows every server as "starting" at once.
        self._connections = {c.name: _Connection(c) for c in servers}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="mcp-hub", daemon=True)
        self._started = False

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> concurrent.futures.Future[None]:
        """Start every server in the background; the future is done once all settled."""
        if not self._started:
            self._started = True
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start_all(), self._loop)

    async def _start_all(self) -> None:
        for conn in self._connections.values():
            if conn.task is None:
                conn.task = asyncio.create_task(self._serve(conn))
        await asyncio.gather(*(c.ready.wait() for c in self._connections.values()))

    def statuses(self) -> list[ServerStatus]:
        """A snapshot of every server's state, in configuration order."""
        return [
            ServerStatus(c.status.name, c.status.state, c.status.reason, list(c.status.tools))
            for c in list(self._connections.values())
        ]

    def registry(self, disabled: Iterable[str] = ()) -> ToolRegistry:
        """The running servers' tools (per-tool switches applied)."""
        registry = ToolRegistry(disabled=disabled)
        for status in self.statuses():
            if status.state == "running":
                registry.add(status.tools)
        return registry

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _fail(self, conn: _Connection, reason: str) -> None:
        conn.session = None
        conn.status.state = "failed"
        conn.status.reason = reason
        conn.ready.set()
        self._changed()

    async def _serve(self, conn: _Connection) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(conn))
                session = await stack.enter_async_context(ClientSession(read, write))
                with anyio.fail_after(self.start_timeout_s):
                    await session.initialize()
                    tools = await self._list_tools(conn.config.name, session)
                conn.session = session
                conn.status.state, conn.status.tools = "running", tools
                conn.ready.set()
                self._changed()
                await conn.closing.wait()
            conn.session = None
            if conn.status.state == "running":
                conn.status.state = "stopped"
                self._changed()
        except BaseException as exc:  # the server's failure is shown, never raised to the app
            reason = _describe(exc)
            if _timed_out(exc):
                reason = f"no answer within {self.start_timeout_s:g} s"
            tail = conn.stderr_tail()
            # The server's own last words usually say more than the transport's error.
            self._fail(conn, f"{tail} ({reason})" if tail and tail not in reason else reason)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            if conn.errlog is not None:
                conn.errlog.close()

    def _transport(self, conn: _Connection) -> contextlib.AbstractAsyncContextManager[Any]:
        config = conn.config
        if isinstance(config, HttpServer):
            client: httpx2.AsyncClient = create_mcp_http_client(headers=config.headers)
            return streamable_http_client(config.url, http_client=client)
        # Closed when the server's task ends (_serve's finally); its tail explains failures.
        conn.errlog = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        params = StdioServerParameters(
            command=config.command, args=list(config.args), env=dict(config.env) or None
        )
        return stdio_client(params, errlog=conn.errlog)

    @staticmethod
    async def _list_tools(server: str, session: ClientSession) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        cursor: str | None = None
        while True:
            page = await (
                session.list_tools(params={"cursor": cursor})  # type: ignore[arg-type]
                if cursor
                else session.list_tools()
            )
            specs.extend(
                ToolSpec(server, t.name, t.description or "", dict(t.input_schema or {}))
                for t in page.tools
            )
            cursor = page.next_cursor
            if not cursor:
                return specs

    def call(
        self, server: str, name: str, arguments: dict[str, Any], timeout_s: float | None = None
    ) -> concurrent.futures.Future[ToolResult]:
        """Run a tool in the background; the future always ends with a ToolResult."""
        coro = self._call(server, name, arguments, timeout_s or self.call_timeout_s)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _call(
        self, server: str, name: str, arguments: dict[str, Any], timeout_s: float
    ) -> ToolResult:
        conn = self._connections.get(server)
        if conn is None or conn.session is None:
            why = conn.status.reason if conn is not None else "not configured"
            return ToolResult.error(f"MCP server {server!r} is not running ({why})")
        try:
            with anyio.fail_after(timeout_s):
                result = await conn.session.call_tool(name, arguments)
        except TimeoutError:
            return ToolResult.error(f"{name}: no answer from {server!r} within {timeout_s:g} s")
        except MCPError as exc:
            if exc.error.code != CONNECTION_CLOSED:  # the server refused this request only
                return ToolResult.error(f"{name} failed on {server!r}: {exc.error.message}")
            self._fail(conn, "the server stopped (connection closed)")
            conn.closing.set()
            return ToolResult.error(f"{name} failed on {server!r}: the server stopped")
        except Exception as exc:  # noqa: BLE001 - a broken server is the model's to read about
            reason = _describe(exc)
            # The connection is gone (the process died): say so and release the transport.
            self._fail(conn, f"stopped answering: {reason}")
            conn.closing.set()
            return ToolResult.error(f"{name} failed on {server!r}: {reason}")
        return _result_of(result)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every server (child processes end) and the hub thread."""
        if not self._started:
            return

        async def _close() -> None:
            for conn in self._connections.values():
                conn.closing.set()
            tasks = [c.task for c in self._connections.values() if c.task is not None]
            await asyncio.wait(tasks, timeout=timeout_s) if tasks else None

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout_s + 1)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()
        self._started = False
