"""Tools for the model: MCP server configuration, the tool registry and the agent loop."""

from __future__ import annotations

from app.core.tools.config import (
    HttpServer,
    McpConfigError,
    ServerConfig,
    StdioServer,
    load_mcp_config,
    parse_mcp_config,
)
from app.core.tools.loop import AgentLoop, Consent, PlannedCall, Step, ToolResult, run_turn
from app.core.tools.registry import ToolRegistry, ToolSpec

__all__ = [
    "AgentLoop",
    "Consent",
    "HttpServer",
    "McpConfigError",
    "PlannedCall",
    "ServerConfig",
    "StdioServer",
    "Step",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "load_mcp_config",
    "parse_mcp_config",
    "run_turn",
]
