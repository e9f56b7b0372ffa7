"""Export a conversation to JSON / Markdown and import it back.

The JSON holds no database ids: messages are numbered 1..n in creation order and point to
their parent by that number, attachments are named by sha256. So export -> import -> export
gives byte-identical JSON (json.dumps with sort_keys), whatever ids the database assigned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from app.core.storage.records import (
    ATTACHMENT_KINDS,
    ROLES,
    STATUSES,
    Attachment,
    AttachmentKind,
    Conversation,
    HistoryError,
    Message,
    Role,
    Status,
    ToolStep,
    tool_steps_from_json,
    tool_steps_to_json,
)

if TYPE_CHECKING:
    from app.core.storage.history import HistoryStore

FORMAT: Final = "gemma-desktop/conversation"
VERSION: Final = 2  # 2: answers carry their tool calls and results ("tool_steps")
_FILE_NAME = re.compile(r"^[0-9a-f]{64}(\.[A-Za-z0-9]{1,10})?$")


def _file_name(att: Attachment) -> str:
    return att.sha256 + att.path.suffix.lower()


def export_json(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    """The whole tree (every branch) of one conversation; messages in creation order."""
    number = {m.id: index for index, m in enumerate(sorted(messages, key=lambda m: m.id), 1)}
    leaf = conversation.current_leaf_id
    return {
        "format": FORMAT,
        "version": VERSION,
        "conversation": {
            "title": conversation.title,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "system_prompt": conversation.system_prompt,
            "preset": conversation.preset,
            "current_leaf": number.get(leaf) if leaf is not None else None,
        },
        "messages": [
            {
                "id": number[m.id],
                "parent": None if m.parent_id is None else number[m.parent_id],
                "role": m.role,
                "content": m.content,
                "thinking": m.thinking,
                "thinking_seconds": m.thinking_seconds,
                "status": m.status,
                "model": m.model,
                "stats": m.stats,
                "created_at": m.created_at,
                "tool_steps": tool_steps_to_json(m.tool_steps),
                "attachments": [
                    {
                        "kind": a.kind,
                        "sha256": a.sha256,
                        "name": a.name,
                        "mime": a.mime,
                        "file": _file_name(a),
                    }
                    for a in m.attachments
                ],
            }
            for m in sorted(messages, key=lambda m: m.id)
        ],
    }


def export_markdown(conversation: Conversation, thread: Sequence[Message]) -> str:
    """The current branch as Markdown, thinking folded into <details> blocks."""
    lines = [f"# {conversation.title}", ""]
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt.strip(), ""]
    for message in thread:
        heading = {"user": "User", "assistant": "Assistant", "system": "System"}[message.role]
        if message.role == "assistant" and message.model:
            heading += f" ({message.model})"
        if message.status not in ("complete", "streaming"):
            heading += f" [{message.status}]"
        lines += [f"## {heading}", ""]
        for step in message.tool_steps:
            lines += _step_markdown(step)
        if message.thinking.strip():
            lines += [
                "<details><summary>Thinking</summary>",
                "",
                message.thinking.strip(),
                "",
                "</details>",
                "",
            ]
        if message.content.strip():
            lines += [message.content.strip(), ""]
        for att in message.attachments:
            link = f"[{att.name}]({_file_name(att)})"
            lines += [("!" + link) if att.kind == "image" else link, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _step_markdown(step: ToolStep) -> list[str]:
    """A tool step: its thinking and text, then each call with its result, folded."""
    lines: list[str] = []
    if step.thinking.strip():
        lines += ["<details><summary>Thinking</summary>", "", step.thinking.strip(), "",
                  "</details>", ""]
    if step.content.strip():
        lines += [step.content.strip(), ""]
    for call in step.calls:
        result = call.result if isinstance(call.result, str) else json.dumps(
            call.result, ensure_ascii=False, indent=2)
        failed = " (failed)" if call.is_error else ""
        lines += [
            f"<details><summary>Tool call: {call.name}{failed}</summary>",
            "",
            "```json",
            json.dumps(call.arguments, ensure_ascii=False, indent=2),
            "```",
            "",
            "```",
            result,
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def export_files(store: HistoryStore, conversation_id: int, folder: Path) -> Path:
    """Write conversation.json, conversation.md and the attachment files; return the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    for message in store.messages(conversation_id):
        for att in message.attachments:
            target = folder / _file_name(att)
            if not target.exists():
                shutil.copyfile(att.path, target)
    data = store.export_json(conversation_id)
    json_path = folder / "conversation.json"
    json_path.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8"
    )
    (folder / "conversation.md").write_text(store.export_markdown(conversation_id), "utf-8")
    return json_path


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bring_in(spec: dict[str, Any], source_dir: Path, store_dir: Path) -> Attachment:
    """Copy one exported attachment into the store (checked against its sha256)."""
    file = str(spec.get("file", ""))
    sha = str(spec.get("sha256", ""))
    kind = spec.get("kind")
    if not _FILE_NAME.match(file) or not file.startswith(sha) or kind not in ATTACHMENT_KINDS:
        raise HistoryError(f"The file lists an attachment it cannot describe ({file!r}).")
    target = store_dir / file
    if not (target.exists() and _sha256_of(target) == sha):
        source = source_dir / file
        if not source.is_file():
            raise HistoryError(
                f"The attachment {spec.get('name', file)} is missing: put {file} next to the JSON file."
            )
        if _sha256_of(source) != sha:
            raise HistoryError(
                f"The attachment {spec.get('name', file)} is damaged (its checksum does not match)."
            )
        fd, tmp = tempfile.mkstemp(dir=store_dir, prefix=".import-")
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return Attachment(
        cast(AttachmentKind, kind),
        target,
        sha,
        str(spec.get("name", file)),
        str(spec.get("mime", "")),
    )


def import_json(store: HistoryStore, data: dict[str, Any], attachments_dir: Path) -> Conversation:
    """Recreate an exported conversation as a new one; HistoryError if the data is not ours."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HistoryError("This file is not a Gemma Desktop conversation export.")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise HistoryError(
            "This conversation was exported by a newer version of Gemma Desktop. Update the app."
        )
    try:
        version = int(data["version"])
        info = data["conversation"]
        specs = list(data["messages"])
        with store.batch():
            conversation = store.create_conversation(str(info["title"]))
            ids: dict[int, int] = {}
            for spec in specs:
                role, status = spec["role"], spec["status"]
                if role not in ROLES or status not in STATUSES:
                    raise HistoryError(
                        f"A message has an unknown role or status ({role!r}, {status!r})."
                    )
                parent = spec["parent"]
                if parent is not None and parent not in ids:
                    raise HistoryError(
                        "A message refers to a parent that comes later or does not exist."
                    )
                attachments = [
                    _bring_in(a, attachments_dir, store.attachments_dir)
                    for a in spec["attachments"]
                ]
                message = store.add_message(
                    conversation.id,
                    None if parent is None else ids[parent],
                    cast(Role, role),
                    str(spec["content"]),
                    attachments=attachments,
                    status=cast(Status, status),
                    model=spec["model"],
                    thinking=str(spec["thinking"]),
                    created_at=float(spec["created_at"]),
                    # Version 1 files were written before answers could call tools.
                    tool_steps=tool_steps_from_json(spec["tool_steps"]) if version >= 2 else (),
                )
                store.update_message(
                    message.id, stats=dict(spec["stats"]), thinking_seconds=spec["thinking_seconds"]
                )
                ids[int(spec["id"])] = message.id
            leaf = info["current_leaf"]
            return store.restore_conversation(
                conversation.id,
                created_at=float(info["created_at"]),
                updated_at=float(info["updated_at"]),
                system_prompt=info["system_prompt"],
                preset=info["preset"],
                current_leaf_id=None if leaf is None else ids[leaf],
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(f"The conversation file is incomplete or damaged ({exc!r}).") from exc
