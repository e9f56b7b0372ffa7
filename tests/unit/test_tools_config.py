"""MCP configuration: the desktop-client JSON shape, and clear errors on bad entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.tools.config import (
    HttpServer,
    McpConfigError,
    StdioServer,
    dump_mcp_config,
    load_mcp_config,
    parse_mcp_config,
)


def test_stdio_and_http_servers_round_trip(tmp_path: Path) -> None:
    doc = {
        "mcpServers": {
            "time": {
                "command": "mcp-server-time",
                "args": ["--local-timezone", "UTC"],
                "env": {"A": "1"},
            },
            "web": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}},
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(doc))
    servers = load_mcp_config(path)
    assert servers == [
        StdioServer("time", "mcp-server-time", ("--local-timezone", "UTC"), {"A": "1"}),
        HttpServer("web", "http://127.0.0.1:9/mcp", {"Authorization": "Bearer x"}),
    ]
    assert dump_mcp_config(servers) == doc
    assert parse_mcp_config(doc["mcpServers"]) == servers  # the bare inner map works too


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        ({"mcpServers": []}, "must be an object"),
        ({"mcpServers": {"a": {}}}, "server 'a': needs a \"command\""),
        ({"mcpServers": {"a": {"url": "ftp://x"}}}, "needs a"),
        ({"mcpServers": {"a": {"command": "x", "args": "y"}}}, "args must be a list"),
        ({"mcpServers": {"a": {"command": "x", "env": {"A": 1}}}}, "env must be an object"),
        ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, "not both"),
    ],
)
def test_bad_entries_are_named(doc: object, message: str) -> None:
    with pytest.raises(McpConfigError, match=message):
        parse_mcp_config(doc)


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(McpConfigError, match="bad.json"):
        load_mcp_config(path)
