"""Tools for `main.py chat --mcp-config FILE`: MCP servers, the agent loop, consent at the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.engine.blocking import BlockingEngine
from app.core.engine.records import Reply, SamplingParams
from app.core.tools.config import load_mcp_config
from app.core.tools.loop import DEFAULT_MAX_STEPS, AgentLoop, Consent, PlannedCall, Step
from app.core.tools.mcp_hub import McpHub

Emit = Callable[[dict[str, Any]], None]


class CliTools:
    """The configured MCP servers' tools, offered to the model and run with the user's consent."""

    def __init__(self, config: Path, *, allow_all: bool, emit: Emit | None,
                 max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.hub = McpHub(load_mcp_config(config))
        self.allow_all = allow_all
        self.emit = emit  # JSON events; None prints plain lines to stderr
        self.max_steps = max_steps
        self.hub.start().result()
        for status in self.hub.statuses():
            if status.state != "running":
                self._say({"event": "tool_server", "server": status.name, "state": status.state,
                           "reason": status.reason})
        self.registry = self.hub.registry()
        self.always: set[str] = set()

    def close(self) -> None:
        self.hub.close()

    def answer(self, engine: BlockingEngine, messages: list[dict[str, Any]], think: bool,
               params: SamplingParams, on_delta: Callable[[str, str], None], cache: bool) -> Reply:
        """One user turn: generate, run the calls the model makes, go on until it answers."""
        loop = AgentLoop(self.registry, max_steps=self.max_steps, always_allowed=self.always)
        added: list[dict[str, Any]] = []
        declarations = self.registry.declarations()
        while True:
            reply = engine.generate([*messages, *added], think, params, cache=cache,
                                    tools=declarations, on_delta=on_delta)
            blocks = [reply.tool_calls] if reply.tool_calls else []
            step = loop.plan(answer=reply.answer, thinking=reply.thinking, tool_blocks=blocks)
            self._run(loop, step)
            if step.final and not step.calls:
                return reply
            added.extend(loop.finish_step())
            self._report(step)
            if step.final or loop.stopped or (reply.stats is not None and reply.stats.stopped):
                return reply

    def _run(self, loop: AgentLoop, step: Step) -> None:
        for call in step.runnable():
            if loop.needs_consent(call):
                loop.consent(call, self._ask(call))
            if loop.allowed(call):
                spec = self.registry.get(call.name)
                assert spec is not None
                loop.record(call, self.hub.call(spec.server, call.name, call.arguments).result())
        self.always = loop.always_allowed

    def _ask(self, call: PlannedCall) -> Consent:
        if self.allow_all:
            return Consent.ALLOW_ONCE
        if not sys.stdin.isatty():
            self._say({"event": "tool_denied", "name": call.name,
                       "reason": "no terminal to ask; pass --allow-tools to allow tool calls"})
            return Consent.DENY
        sys.stderr.write(f"\nThe model wants to run {call.name} with "
                         f"{json.dumps(call.arguments, ensure_ascii=False, indent=2)}\n"
                         "Allow? [y] once, [a] always, [N] deny: ")
        sys.stderr.flush()
        choice = sys.stdin.readline().strip().lower()
        return {"y": Consent.ALLOW_ONCE, "a": Consent.ALWAYS}.get(choice[:1], Consent.DENY)

    def _report(self, step: Step) -> None:
        for call in step.calls:
            result = call.result
            self._say({"event": "tool_result", "name": call.name, "arguments": call.arguments,
                       "is_error": bool(result and result.is_error),
                       "content": result.content if result else call.error})

    def _say(self, event: dict[str, Any]) -> None:
        if self.emit is not None:
            self.emit(event)
        else:
            sys.stderr.write(" ".join(f"{k}={v}" for k, v in event.items()) + "\n")
