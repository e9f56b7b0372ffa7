"""Plain records the history store hands out (immutable snapshots of rows)."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matches a search, with a short piece of text around the match."""

    conversation_id: int
    message_id: int
    title: str
    snippet: str
