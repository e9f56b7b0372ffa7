"""Tool steps between the agent loop, the history and the prompt.

A finished loop step (``loop.Step`` after ``finish_step``) becomes a stored ``ToolStep``;
a stored ``ToolStep`` becomes the messages the template renders again: the assistant
message with its ``tool_calls`` (and its thinking, which the template keeps for tool-call
turns after the last user turn) followed by one role-"tool" message per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.chat.tool_calls import ToolCall
from app.core.storage.records import ToolCallRecord, ToolStep
from app.core.tools.loop import Step, ToolResult


def step_record(step: Step, servers: Mapping[str, str] | None = None,
                thinking_seconds: float | None = None) -> ToolStep:
    """The stored form of a finished step (every call has its result or error by now)."""
    calls = []
    for call in step.calls:
        result = call.result or ToolResult.error(call.error or "not run")
        calls.append(ToolCallRecord(
            call_id=call.call_id,
            name=call.name,
            arguments=dict(call.arguments),
            result=result.content,
            is_error=result.is_error,
            server=(servers or {}).get(call.name, "") if call.error is None else "",
            raw=call.raw,
        ))
    return ToolStep(step.thinking, step.answer, tuple(calls), thinking_seconds)


def step_messages(step: ToolStep) -> list[dict[str, Any]]:
    """The messages one stored step adds to the prompt (the shape ``AgentLoop.finish_step`` gives)."""
    assistant: dict[str, Any] = {"role": "assistant", "content": step.content}
    if step.thinking:
        assistant["thinking"] = step.thinking
    if step.calls:
        assistant["tool_calls"] = [
            ToolCall(c.name, dict(c.arguments)).to_openai(c.call_id) for c in step.calls
        ]
    out = [assistant]
    for call in step.calls:
        result = ToolResult(call.result, is_error=call.is_error)
        out.append({"role": "tool", "tool_call_id": call.call_id, "name": call.name,
                    "content": result.as_message_content()})
    return out
