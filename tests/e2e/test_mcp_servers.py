"""MCP for real: mcp-server-time over stdio, an SDK server over streamable HTTP, broken servers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.tools.config import HttpServer, StdioServer
from app.core.tools.mcp_hub import McpHub

SERVER_SOURCE = '''
import asyncio, os, sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("test-tools")

@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b

@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()

@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.Event().wait()
    return ""

@server.tool()
def crash() -> str:
    """The server process dies."""
    os._exit(7)

if sys.argv[1] == "http":
    asyncio.run(server.run_streamable_http_async(host="127.0.0.1", port=int(sys.argv[2])))
else:
    server.run()
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "test_server.py"
    path.write_text(SERVER_SOURCE)
    return path


@pytest.fixture
def http_server(server_script: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(server_script), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    try:
        while True:  # wait until it listens (poll the socket, not a fixed sleep)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the HTTP MCP server did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


def _hub(*servers: StdioServer | HttpServer, **kw: float) -> McpHub:
    hub = McpHub(servers, **kw)
    hub.start().result(60)
    return hub


def test_mcp_server_time_over_stdio() -> None:
    time_server = StdioServer(
        "time", sys.executable, ("-m", "mcp_server_time", "--local-timezone", "UTC")
    )
    hub = _hub(time_server)
    try:
        (status,) = hub.statuses()
        assert (status.state, status.reason) == ("running", "")
        names = {t.name for t in status.tools}
        assert {"get_current_time", "convert_time"} <= names
        registry = hub.registry(disabled={"time/convert_time"})
        assert [d["function"]["name"] for d in registry.declarations()] == ["get_current_time"]
        result = hub.call("time", "get_current_time", {"timezone": "Asia/Tokyo"}).result(30)
        assert not result.is_error
        assert isinstance(result.content, dict)
        assert result.content["timezone"] == "Asia/Tokyo"
        assert result.content["datetime"].endswith("+09:00")
        bad = hub.call("time", "get_current_time", {"timezone": "Mars/Base"}).result(30)
        assert bad.is_error and "Mars/Base" in str(bad.content)
    finally:
        hub.close()


def test_sdk_server_over_streamable_http(http_server: str) -> None:
    hub = _hub(HttpServer("web", http_server, {"X-Test": "1"}), call_timeout_s=2)
    try:
        (status,) = hub.statuses()
        assert status.state == "running", status.reason
        assert {t.name for t in status.tools} == {"add", "shout", "hang", "crash"}
        added = hub.call("web", "add", {"a": 40, "b": 2}).result(30)
        assert added.content == {"result": 42}
        shout = hub.call("web", "shout", {"text": 'a, {b}\n<|"|>'}).result(30)
        assert shout.content == {"result": 'A, {B}\n<|"|>'}
        started = time.monotonic()
        hung = hub.call("web", "hang", {}).result(30)
        assert hung.is_error and "no answer from 'web' within 2 s" in str(hung.content)
        assert 1.9 < time.monotonic() - started < 10
        # The hung call does not take the server down.
        assert hub.call("web", "add", {"a": 1, "b": 1}).result(30).content == {"result": 2}
        # A request the server refuses is an error result; the server stays up.
        unknown = hub.call("web", "no_such_tool", {}).result(30)
        assert unknown.is_error and "no_such_tool" in str(unknown.content)
        assert hub.statuses()[0].state == "running"
    finally:
        hub.close()


def test_dead_and_hanging_servers_fail_with_a_reason(server_script: Path) -> None:
    dies = StdioServer("dies", sys.executable, ("-c", "import sys; sys.exit('broken config x')"))
    hangs = StdioServer("hangs", sys.executable, ("-c", "import sys\nfor _ in sys.stdin: pass"))
    missing = StdioServer("missing", "/no/such/server")
    hub = _hub(dies, hangs, missing, start_timeout_s=2)
    try:
        states = {s.name: (s.state, s.reason) for s in hub.statuses()}
        assert states["dies"][0] == "failed" and "broken config x" in states["dies"][1]
        assert states["hangs"] == ("failed", "no answer within 2 s")
        assert states["missing"][0] == "failed" and "/no/such/server" in states["missing"][1]
        result = hub.call("hangs", "anything", {}).result(10)
        assert result.is_error and "is not running (no answer within 2 s)" in str(result.content)
    finally:
        hub.close()


def test_server_that_dies_during_a_call(server_script: Path) -> None:
    changed = threading.Event()
    local = StdioServer("local", sys.executable, (str(server_script), "stdio"))
    hub = McpHub([local], call_timeout_s=5, on_change=changed.set)
    hub.start().result(60)
    try:
        assert hub.statuses()[0].state == "running"
        changed.clear()
        started = time.monotonic()
        result = hub.call("local", "crash", {}).result(30)
        assert result.is_error, result
        assert time.monotonic() - started < 10
        assert changed.wait(30)  # the hub notices the dead process and says so
        after = hub.call("local", "add", {"a": 1, "b": 2}).result(10)
        assert after.is_error and "not running" in str(after.content)
        assert hub.statuses()[0].state == "failed"
    finally:
        hub.close()
