"""The answer being written in the window: its buffers, timing, and tool-loop state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.core.storage.records import ToolStep
from app.core.storage.settings import PRESETS
from app.ui.chat_tools import ToolTurn
from app.ui.messages import AssistantMessageWidget

GENERATION_PARAMS = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "repeat_penalty", "seed")


def generation_params(settings: Any, preset: str | None = None) -> dict[str, Any]:
    """Sampling values for a request: the settings', with a conversation's preset over them."""
    params: dict[str, Any] = {}
    for name in GENERATION_PARAMS:
        value = getattr(settings, name, None)
        if value is not None:
            params[name] = value
    params.update(PRESETS.get(preset or "", {}))
    return params


@dataclass
class Generation:
    """The answer being written now."""

    conversation_id: Any
    message_id: Any
    widget: AssistantMessageWidget | None
    started_at: float = field(default_factory=time.monotonic)
    thinking: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    thinking_started: float | None = None
    thinking_ended: float | None = None
    stop_requested: bool = False
    request_id: int | None = None  # the engine's id for this answer
    discarded: bool = False  # its conversation was deleted: wait for the end, store nothing
    turn: ToolTurn | None = None  # the tool loop, when tools are offered
    messages: list[dict[str, Any]] = field(default_factory=list)  # the prompt so far
    call_blocks: list[str] = field(default_factory=list)  # tool-call blocks of the current reply
    steps: list[ToolStep] = field(default_factory=list)  # finished tool steps of this answer
    stats: dict[str, Any] = field(default_factory=dict)  # of the last generation

    def thinking_seconds(self) -> float | None:
        if self.thinking_started is None:
            return None
        end = self.thinking_ended if self.thinking_ended is not None else time.monotonic()
        return round(end - self.thinking_started, 1)

    def next_reply(self) -> None:
        """The reply ended in tool calls: the next one streams into empty buffers."""
        self.thinking, self.answer, self.call_blocks = [], [], []
        self.thinking_started = self.thinking_ended = None
