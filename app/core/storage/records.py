"""Plain records the history store hands out (immutable snapshots of rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

Role = Literal["system", "user", "assistant"]
Status = Literal["complete", "streaming", "stopped", "interrupted", "error"]
AttachmentKind = Literal["image", "audio"]

ROLES: Final = ("system", "user", "assistant")
STATUSES: Final = ("complete", "streaming", "stopped", "interrupted", "error")
ATTACHMENT_KINDS: Final = ("image", "audio")
DEFAULT_TITLE: Final = "New chat"


class HistoryError(Exception):
    """A history operation failed; the message is written for the user."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """An image or audio clip kept as a file named by its sha256 in the attachments folder."""

    kind: AttachmentKind
    path: Path
    sha256: str
    name: str
    mime: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation; system_prompt / preset are per-conversation overrides (None = settings)."""

    id: int
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None
    preset: str | None
    current_leaf_id: int | None


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call of an answer and what came back (the error text when it did not run)."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    result: str | dict[str, Any]
    is_error: bool = False
    server: str = ""  # the MCP server that ran it ("" when it never ran)
    raw: str = ""  # the call as the model wrote it (what a malformed call shows)


@dataclass(frozen=True, slots=True)
class ToolStep:
    """A model reply that ended in tool calls: its thinking, its text, its calls and results."""

    thinking: str
    content: str
    calls: tuple[ToolCallRecord, ...]
    thinking_seconds: float | None = None


def tool_steps_to_json(steps: Sequence[ToolStep]) -> list[dict[str, Any]]:
    """The stored (and exported) form of an answer's tool steps."""
    return [
        {
            "thinking": s.thinking,
            "content": s.content,
            "thinking_seconds": s.thinking_seconds,
            "calls": [
                {
                    "id": c.call_id,
                    "name": c.name,
                    "arguments": c.arguments,
                    "result": c.result,
                    "is_error": c.is_error,
                    "server": c.server,
                    "raw": c.raw,
                }
                for c in s.calls
            ],
        }
        for s in steps
    ]


def tool_steps_from_json(data: Sequence[Any]) -> tuple[ToolStep, ...]:
    """Read what tool_steps_to_json wrote (KeyError/TypeError on damaged data)."""
    return tuple(
        ToolStep(
            thinking=str(s["thinking"]),
            content=str(s["content"]),
            thinking_seconds=None if s["thinking_seconds"] is None else float(s["thinking_seconds"]),
            calls=tuple(
                ToolCallRecord(
                    call_id=str(c["id"]),
                    name=str(c["name"]),
                    arguments=dict(c["arguments"]),
                    result=c["result"] if isinstance(c["result"], dict) else str(c["result"]),
                    is_error=bool(c["is_error"]),
                    server=str(c["server"]),
                    raw=str(c["raw"]),
                )
                for c in s["calls"]
            ),
        )
        for s in data
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A node of the conversation tree; `model` names the model that wrote an answer."""

    id: int
    conversation_id: int
    parent_id: int | None
    role: Role
    content: str
    thinking: str
    thinking_seconds: float | None
    status: Status
    model: str | None
    created_at: float
    stats: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    tool_steps: tuple[ToolStep, ...] = ()  # the tool calls made before this answer, in order


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matches a search, with a short piece of text around the match."""

    conversation_id: int
    message_id: int
    title: str
    snippet: str
