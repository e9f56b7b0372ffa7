"""`python main.py tools list|call`: check MCP servers and their tools from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.core.tools.config import McpConfigError, ServerConfig, load_mcp_config, parse_mcp_config
from app.core.tools.mcp_hub import CALL_TIMEOUT_S, START_TIMEOUT_S, McpHub


def _servers(path: Path | None) -> list[ServerConfig]:
    if path is not None:
        return load_mcp_config(path)
    from app.core.storage.settings import load_settings

    settings, _warning = load_settings()
    return parse_mcp_config({"mcpServers": settings.mcp_servers})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py tools", description="List and try the tools of your MCP servers."
    )
    sub = p.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--mcp-config",
        type=Path,
        help='JSON file {"mcpServers": {…}} (default: the servers in Settings → Tools)',
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--timeout", type=float, default=None, help="seconds per server/call")
    sub.add_parser("list", parents=[common], help="start the servers and list their tools")
    call = sub.add_parser("call", parents=[common], help="call one tool")
    call.add_argument("name", help="tool name (or SERVER/TOOL when names clash)")
    call.add_argument("--args", default="{}", help="the arguments as a JSON object")
    return p


def run_tools(argv: list[str]) -> int:
    """Entry point of `main.py tools`."""
    p = _parser()
    args = p.parse_args(argv)
    arguments: dict[str, Any] = {}
    if args.action == "call":
        try:
            arguments = json.loads(args.args)
        except ValueError as exc:
            p.error(f"--args: {exc}")
        if not isinstance(arguments, dict):
            p.error("--args must be a JSON object")
    try:
        servers = _servers(args.mcp_config)
    except McpConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    hub = McpHub(
        servers,
        start_timeout_s=args.timeout or START_TIMEOUT_S,
        call_timeout_s=args.timeout or CALL_TIMEOUT_S,
    )
    try:
        hub.start().result()
        if args.action == "list":
            return _list(hub, as_json=args.json)
        return _call(hub, args.name, arguments, as_json=args.json)
    finally:
        hub.close()


def _list(hub: McpHub, *, as_json: bool) -> int:
    statuses = hub.statuses()
    if as_json:
        doc = [
            {
                "server": s.name,
                "state": s.state,
                "reason": s.reason,
                "tools": [
                    {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                    for t in s.tools
                ],
            }
            for s in statuses
        ]
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        if not statuses:
            print("No MCP servers configured.")
        for s in statuses:
            print(f"{s.name}: {s.state}{f' ({s.reason})' if s.reason else ''}")
            for t in s.tools:
                summary = t.description.strip().splitlines()[0] if t.description.strip() else ""
                print(f"  {t.name}{f' - {summary}' if summary else ''}")
    return 0 if all(s.state == "running" for s in statuses) else 1


def _call(hub: McpHub, name: str, arguments: dict[str, Any], *, as_json: bool) -> int:
    server, _, tool = name.rpartition("/")
    spec = next(
        (t for s in hub.statuses() for t in s.tools if t.name == tool and server in ("", s.name)),
        None,
    )
    if spec is None:
        failed = [f"{s.name} ({s.reason})" for s in hub.statuses() if s.state == "failed"]
        hint = f"; servers that failed: {', '.join(failed)}" if failed else ""
        sys.stderr.write(f"error: no tool named {name!r}{hint}\n")
        return 2
    result = hub.call(spec.server, spec.name, arguments).result()
    if as_json:
        doc = {"server": spec.server, "tool": spec.name, "is_error": result.is_error}
        print(json.dumps({**doc, "content": result.content}, ensure_ascii=False, indent=2))
    elif isinstance(result.content, dict):
        print(json.dumps(result.content, ensure_ascii=False, indent=2))
    else:
        print(result.content)
    return 1 if result.is_error else 0
