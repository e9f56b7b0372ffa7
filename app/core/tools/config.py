"""MCP server configuration in the shape other desktop MCP clients use.

``{"mcpServers": {name: {"command", "args", "env"} | {"url", "headers"}}}``: a server with a
``command`` runs as a child process over stdio, one with a ``url`` is reached over
streamable HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class McpConfigError(ValueError):
    """The MCP configuration is not in the expected shape."""


@dataclass(frozen=True)
class StdioServer:
    """A server started as a child process, spoken to over stdin/stdout."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears under "mcpServers"."""
        return {"command": self.command, "args": list(self.args), "env": dict(self.env)}


@dataclass(frozen=True)
class HttpServer:
    """A server reached over streamable HTTP."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears under "mcpServers"."""
        return {"url": self.url, "headers": dict(self.headers)}


ServerConfig = StdioServer | HttpServer


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpConfigError(f"{what} must be an object of strings")
    return dict(value)


def _server(name: str, entry: Any) -> ServerConfig:
    if not isinstance(entry, Mapping):
        raise McpConfigError(f"server {name!r}: expected an object")
    if "command" in entry and "url" in entry:
        raise McpConfigError(f"server {name!r}: give either a command or a url, not both")
    if isinstance(entry.get("command"), str) and entry["command"]:
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise McpConfigError(f"server {name!r}: args must be a list of strings")
        env = _strings(entry.get("env"), f"server {name!r}: env")
        return StdioServer(name, entry["command"], tuple(args), env)
    url = entry.get("url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return HttpServer(name, url, _strings(entry.get("headers"), f"server {name!r}: headers"))
    raise McpConfigError(f'server {name!r}: needs a "command" or an http(s) "url"')


def parse_mcp_config(data: Any) -> list[ServerConfig]:
    """Servers from ``{"mcpServers": {…}}`` (or the bare inner map); raise McpConfigError."""
    if not isinstance(data, Mapping):
        raise McpConfigError("the MCP configuration must be a JSON object")
    servers = data.get("mcpServers", data)
    if not isinstance(servers, Mapping):
        raise McpConfigError('"mcpServers" must be an object')
    return [_server(str(name), entry) for name, entry in servers.items()]


def load_mcp_config(path: Path) -> list[ServerConfig]:
    """Servers from a JSON file; raise McpConfigError naming the file when it is unreadable."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise McpConfigError(f"cannot read MCP configuration {path}: {exc}") from exc
    return parse_mcp_config(data)


def dump_mcp_config(servers: list[ServerConfig]) -> dict[str, Any]:
    """The ``{"mcpServers": {…}}`` document for a list of servers."""
    return {"mcpServers": {s.name: s.to_json() for s in servers}}
