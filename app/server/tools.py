"""`tools` / `tool_choice` of a chat request, and the model's calls as OpenAI `tool_calls`.

- `none` (or no tools): nothing is offered; the prompt has no declarations.
- `auto` (the default with tools): the template declares them; the model decides.
- `required` / a named function: also declared, and a grammar (app/core/chat/tool_grammar.py)
  makes the answer calls: to any offered function, or only to the named one, with arguments
  that follow each function's JSON schema. A raw `grammar` or a `response_format` would fight
  it, so either with them is a 400.

Calls come back as OpenAI `tool_calls` entries, arguments as a JSON string. A block the model
wrote that does not parse, or that calls a function not offered, is not a call: like
llama-server, its raw text is returned in `content` (nothing the model wrote is lost, the
finish reason stays "stop"/"length"), never a 500.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.core.chat.tool_calls import ToolCallError, parse_tool_calls
from app.core.chat.tool_grammar import tool_call_grammar
from app.server.convert import BadRequest
from app.server.schemas import ChatRequest, NamedToolChoice, ToolDef


@dataclass(frozen=True)
class ToolPlan:
    """What a request offers the model and how it is held to calling."""

    declarations: list[dict[str, Any]] = field(default_factory=list)  # for the template
    grammar: str | None = None  # set for `required` and a named function
    names: frozenset[str] = frozenset()  # functions whose calls become `tool_calls`


def plan_tools(body: ChatRequest, thinking: bool) -> ToolPlan:
    """Validate `tools`/`tool_choice` (400 on nonsense) and decide what the engine gets."""
    tools = body.tools or []
    names = [t.function.name for t in tools]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise BadRequest(f"tools: the function {name!r} is declared twice.",
                             f"tools[{i}].function.name")
    for i, tool in enumerate(tools):
        params = tool.function.parameters
        if params is not None and params.get("type", "object") != "object":
            raise BadRequest(f"tools[{i}].function.parameters must be a JSON schema of type "
                             f"object, not {params.get('type')!r}.",
                             f"tools[{i}].function.parameters")
    choice = body.tool_choice if body.tool_choice is not None else ("auto" if tools else "none")
    only: str | None = None
    if isinstance(choice, NamedToolChoice):
        only = choice.function.name
        if only not in names:
            offered = ", ".join(names) or "none"
            raise BadRequest(f"tool_choice names the function {only!r}, which is not in tools "
                             f"(offered: {offered}).", "tool_choice")
    elif choice in ("auto", "required") and not tools:
        raise BadRequest(f"tool_choice {choice!r} needs a non-empty tools list.", "tool_choice")
    if choice == "none":
        return ToolPlan()
    declarations = [declaration(t) for t in tools]
    if choice == "auto":
        return ToolPlan(declarations, None, frozenset(names))
    if body.response_format is not None and body.response_format.type != "text":
        raise BadRequest("response_format cannot be combined with tool_choice 'required' or a "
                         "named function: the answer must be a tool call.", "response_format")
    if body.grammar:
        raise BadRequest("grammar cannot be combined with tool_choice 'required' or a named "
                         "function: the server writes the grammar for the call.", "grammar")
    try:
        grammar = tool_call_grammar(declarations, only=only, parallel=body.parallel_tool_calls,
                                    allow_thought=thinking)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadRequest(f"tools: the parameters cannot be turned into a grammar ({exc}).",
                         "tools") from exc
    return ToolPlan(declarations, grammar, frozenset([only] if only else names))


def declaration(tool: ToolDef) -> dict[str, Any]:
    """The OpenAI declaration as the template reads it (a description always present)."""
    function: dict[str, Any] = {"name": tool.function.name,
                                "description": tool.function.description or ""}
    if tool.function.parameters is not None:
        function["parameters"] = tool.function.parameters
    return {"type": "function", "function": function}


@dataclass(frozen=True)
class OutCall:
    """A call the model made, as the API returns it."""

    id: str  # call_<random>
    name: str
    arguments: str  # JSON text, as OpenAI clients expect

    def entry(self) -> dict[str, Any]:
        """The entry of a message's `tool_calls`."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}

    def stream_deltas(self, index: int) -> list[dict[str, Any]]:
        """The call as OpenAI streams one: id and name first, then the arguments text."""
        return [{"tool_calls": [{"index": index, "id": self.id, "type": "function",
                                 "function": {"name": self.name, "arguments": ""}}]},
                {"tool_calls": [{"index": index, "function": {"arguments": self.arguments}}]}]


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def read_calls(block: str, names: frozenset[str]) -> list[OutCall] | None:
    """The calls of one `<|tool_call>…<tool_call|>` block; None if it is not a valid call to an
    offered function (the caller returns its text as content)."""
    if not names:
        return None
    try:
        calls = parse_tool_calls(block)
    except ToolCallError:
        return None
    if not calls or any(c.name not in names for c in calls):
        return None
    return [OutCall(new_call_id(), c.name, json.dumps(c.arguments, ensure_ascii=False))
            for c in calls]
