"""Chat actions on top of the history store: send, regenerate, edit and resend, finish.

Every action writes to disk before the engine starts, so a crash never loses what the user
typed; the answer is a "streaming" placeholder until ``finish`` (or ``mark_interrupted`` at
the next start) settles it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.storage.history import HistoryStore
from app.core.storage.records import DEFAULT_TITLE, Attachment, Message, Status, ToolStep
from app.core.tools.transcript import step_messages

TITLE_LENGTH = 40


def title_from(text: str, attachments: Sequence[Attachment] = ()) -> str:
    """A conversation title from the first user message: its first line, cut at a word."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if not line:
        if any(a.kind == "audio" for a in attachments):
            return "Voice message"
        return "Image" if attachments else DEFAULT_TITLE
    if len(line) <= TITLE_LENGTH:
        return line
    cut = (
        line[:TITLE_LENGTH].rsplit(" ", 1)[0] if " " in line[:TITLE_LENGTH] else line[:TITLE_LENGTH]
    )
    return cut.rstrip(" ,.;:-") + "…"


class ChatSession:
    """The conversation operations the UI calls; pure storage work, no engine, no Qt."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def send(
        self,
        conversation_id: int,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        model: str | None,
    ) -> tuple[Message, Message]:
        """Store the user's message and an empty "streaming" answer after the current leaf."""
        leaf = self.store.get_conversation(conversation_id).current_leaf_id
        return self._user_and_placeholder(conversation_id, leaf, text, attachments, model)

    def regenerate(self, assistant_message_id: int, *, model: str | None = None) -> Message:
        """A new "streaming" answer next to an earlier one (the old one stays as a branch)."""
        old = self.store.get_message(assistant_message_id)
        if old.role != "assistant":
            raise ValueError("only an answer can be regenerated")
        return self.store.add_message(
            old.conversation_id, old.parent_id, "assistant", "", status="streaming", model=model
        )

    def edit_and_resend(
        self, user_message_id: int, new_text: str, *, model: str | None = None
    ) -> tuple[Message, Message]:
        """A new version of a user message (same attachments) and a "streaming" answer to it."""
        old = self.store.get_message(user_message_id)
        if old.role != "user":
            raise ValueError("only a user message can be edited")
        return self._user_and_placeholder(
            old.conversation_id, old.parent_id, new_text, old.attachments, model
        )

    def finish(
        self,
        message_id: int,
        content: str,
        thinking: str,
        status: Status,
        stats: dict[str, Any] | None = None,
        thinking_seconds: float | None = None,
        tool_steps: Sequence[ToolStep] | None = None,
    ) -> Message:
        """Save the final answer (status complete, stopped or error) and the tool calls it made."""
        return self.store.update_message(
            message_id,
            content=content,
            thinking=thinking,
            status=status,
            stats=stats or {},
            thinking_seconds=thinking_seconds,
            tool_steps=tool_steps,
        )

    def engine_messages(
        self, conversation_id: int, leaf_id: int | None = None, system_prompt: str = ""
    ) -> list[dict[str, Any]]:
        """Messages for render_prompt, root to leaf_id (default: the current leaf).

        The conversation's own system prompt, when set, wins over system_prompt (the one from
        the settings). Answers go without their thinking; the "streaming" answer being
        generated and answers that never got any text are left out.
        """
        conversation = self.store.get_conversation(conversation_id)
        thread = self.store.thread(conversation_id, leaf_id)
        if thread and thread[-1].role == "assistant" and thread[-1].status == "streaming":
            thread = thread[:-1]
        out: list[dict[str, Any]] = []
        system = (
            conversation.system_prompt if conversation.system_prompt is not None else system_prompt
        )
        if system.strip():
            out.append({"role": "system", "content": system})
        for message in thread:
            if message.role == "assistant":
                for step in message.tool_steps:  # the calls it made and their results
                    out.extend(step_messages(step))
                if message.content.strip():
                    out.append({"role": "assistant", "content": message.content})
            elif message.attachments:
                parts: list[dict[str, Any]] = [
                    {"type": a.kind, "path": str(a.path)} for a in message.attachments
                ]
                if message.content:
                    parts.append({"type": "text", "text": message.content})
                out.append({"role": message.role, "content": parts})
            else:
                out.append({"role": message.role, "content": message.content})
        return out

    def _user_and_placeholder(
        self,
        conversation_id: int,
        parent_id: int | None,
        text: str,
        attachments: Sequence[Attachment],
        model: str | None,
    ) -> tuple[Message, Message]:
        with self.store.batch():
            conversation = self.store.get_conversation(conversation_id)
            user = self.store.add_message(
                conversation_id, parent_id, "user", text, attachments=attachments
            )
            answer = self.store.add_message(
                conversation_id, user.id, "assistant", "", status="streaming", model=model
            )
            if conversation.title == DEFAULT_TITLE:
                self.store.rename_conversation(conversation_id, title_from(text, attachments))
        return user, answer
