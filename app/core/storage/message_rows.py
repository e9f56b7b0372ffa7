"""Message rows to records, and the recursive queries over the message tree."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from app.core.storage.records import Attachment, AttachmentKind, Message, tool_steps_from_json

MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, role, content, thinking, thinking_seconds, status, model, "
    "created_at, stats, tool_steps"
)

# The branch from the root down to a leaf: walk up the parent links, then read them root first.
THREAD_SQL = f"""WITH RECURSIVE up(id, depth) AS (
        SELECT id, 0 FROM messages WHERE id = ? AND conversation_id = ?
        UNION ALL
        SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id
        WHERE m.parent_id IS NOT NULL)
    SELECT {", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))}
    FROM up JOIN messages m ON m.id = up.id ORDER BY up.depth DESC"""

# A child is always newer than its parent, so the newest message of a subtree is a leaf.
NEWEST_LEAF_SQL = """WITH RECURSIVE down(id) AS (
        SELECT ? UNION ALL SELECT m.id FROM messages m JOIN down ON m.parent_id = down.id)
    SELECT max(id) FROM down"""

Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def messages_from_rows(
    rows: Sequence[tuple[Any, ...]], query: Query, resolve: Callable[[str], Path]
) -> list[Message]:
    """Records for message rows, attachments fetched in one query (long threads stay fast)."""
    by_message: dict[int, list[Attachment]] = {}
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        for mid, kind, path, sha, name, mime in query(
            "SELECT message_id, kind, path, sha256, name, mime FROM attachments "
            f"WHERE message_id IN ({','.join('?' * len(chunk))}) ORDER BY message_id, position",
            chunk,
        ):
            by_message.setdefault(mid, []).append(
                Attachment(cast(AttachmentKind, kind), resolve(path), sha, name, mime)
            )
    return [
        Message(
            id=mid,
            conversation_id=conv,
            parent_id=parent,
            role=role,
            content=content,
            thinking=thinking,
            thinking_seconds=seconds,
            status=status,
            model=model,
            created_at=created,
            stats=json.loads(stats),
            attachments=tuple(by_message.get(mid, ())),
            tool_steps=tool_steps_from_json(json.loads(steps)),
        )
        for (
            mid,
            conv,
            parent,
            role,
            content,
            thinking,
            seconds,
            status,
            model,
            created,
            stats,
            steps,
        ) in rows
    ]
