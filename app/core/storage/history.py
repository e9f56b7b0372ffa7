"""Conversation history in SQLite: conversations, a tree of messages, attachments, search.

Threading: one connection guarded by a lock, so any thread may call any method; calls are
serialised. The GUI thread should only do the cheap single-row calls (add_message,
update_message, rename, select_branch); export/import and delete belong on a worker thread.
WAL mode keeps readers from blocking the writer and makes a crash mid-write harmless.
Just over 400 lines: one store on one connection and lock; the length is its SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from app.core import paths
from app.core.storage import transfer
from app.core.storage.message_rows import (
    MESSAGE_COLUMNS,
    NEWEST_LEAF_SQL,
    THREAD_SQL,
    messages_from_rows,
)
from app.core.storage.records import (
    DEFAULT_TITLE,
    ROLES,
    STATUSES,
    Attachment,
    Conversation,
    HistoryError,
    Message,
    Role,
    SearchHit,
    Status,
    ToolStep,
    tool_steps_to_json,
)
from app.core.storage.schema import migrate


def default_db_path() -> Path:
    """The history database of this user (attachments live next to it)."""
    return paths.data_dir() / "history.db"


def fts_query(text: str) -> str:
    """User text as a safe FTS5 query: every word quoted, matched as a prefix, all required."""
    words = text.split()
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


class HistoryStore:
    """All conversations of the user; see the module docstring for the threading rules."""

    def __init__(self, db_path: Path, attachments_dir: Path | None = None) -> None:
        self.db_path = db_path
        self.attachments_dir = attachments_dir or db_path.parent / "attachments"
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.attachments_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            self._conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise HistoryError(
                f"The chat history file {db_path} cannot be opened ({exc}). "
                "Move it away to start a fresh history."
            ) from exc

    # ---- plumbing -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several calls into one transaction (all or nothing, one disk sync)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database (checkpoints the WAL)."""
        with self._lock:
            self._conn.close()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return cast("tuple[Any, ...] | None", row)

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    # ---- conversations --------------------------------------------------------------------

    def create_conversation(self, title: str = DEFAULT_TITLE) -> Conversation:
        """A new, empty conversation."""
        now = time.time()
        with self.batch():
            cur = self._conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)",
                (title, now, now),
            )
            return self.get_conversation(cast(int, cur.lastrowid))

    def list_conversations(self) -> list[Conversation]:
        """All conversations, most recently active first."""
        rows = self._all("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC")
        return [Conversation(*row) for row in rows]

    def get_conversation(self, conversation_id: int) -> Conversation:
        """One conversation; HistoryError if it does not exist."""
        row = self._one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if row is None:
            raise HistoryError("This conversation no longer exists.")
        return Conversation(*row)

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        """Change the title (also used for the automatic title from the first message)."""
        with self.batch():
            self._conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ?",
                (title.strip() or DEFAULT_TITLE, conversation_id),
            )
            return self.get_conversation(conversation_id)

    def set_overrides(
        self, conversation_id: int, *, system_prompt: str | None, preset: str | None
    ) -> Conversation:
        """Per-conversation system prompt and preset; None means "use the settings"."""
        with self.batch():
            self._conn.execute(
                "UPDATE conversations SET system_prompt = ?, preset = ? WHERE id = ?",
                (system_prompt, preset, conversation_id),
            )
            return self.get_conversation(conversation_id)

    def restore_conversation(
        self,
        conversation_id: int,
        *,
        created_at: float,
        updated_at: float,
        system_prompt: str | None,
        preset: str | None,
        current_leaf_id: int | None,
    ) -> Conversation:
        """Set every field of a conversation at once (used by import)."""
        with self.batch():
            self._conn.execute(
                "UPDATE conversations SET created_at = ?, updated_at = ?, system_prompt = ?, "
                "preset = ?, current_leaf_id = ? WHERE id = ?",
                (created_at, updated_at, system_prompt, preset, current_leaf_id, conversation_id),
            )
            return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation, its messages, and attachment files no other message uses."""
        with self.batch():
            shas = {
                row[0]
                for row in self._all(
                    "SELECT a.sha256 FROM attachments a JOIN messages m ON m.id = a.message_id "
                    "WHERE m.conversation_id = ?",
                    (conversation_id,),
                )
            }
            files = self._files_for(shas)
            self._conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            self._conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            still_used = {
                row[0]
                for sha in shas
                for row in self._all(
                    "SELECT sha256 FROM attachments WHERE sha256 = ? LIMIT 1", (sha,)
                )
            }
        # Files go only after the rows are gone for good, and only our own copies.
        for sha, file in files:
            if sha not in still_used and file.parent == self.attachments_dir:
                file.unlink(missing_ok=True)

    def _files_for(self, shas: Iterable[str]) -> list[tuple[str, Path]]:
        found = []
        for sha in shas:
            for (stored,) in self._all(
                "SELECT DISTINCT path FROM attachments WHERE sha256 = ?", (sha,)
            ):
                found.append((sha, self._resolve(stored)))
        return found

    # ---- messages -------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        parent_id: int | None,
        role: Role,
        content: str,
        *,
        attachments: Sequence[Attachment] = (),
        status: Status = "complete",
        model: str | None = None,
        thinking: str = "",
        created_at: float | None = None,
        tool_steps: Sequence[ToolStep] = (),
    ) -> Message:
        """Add a message under parent_id (None = a root); it becomes the conversation's leaf."""
        if role not in ROLES or status not in STATUSES:
            raise ValueError(f"bad role or status: {role!r}, {status!r}")
        now = time.time() if created_at is None else created_at
        with self.batch():
            self.get_conversation(conversation_id)
            if parent_id is not None:
                parent = self.get_message(parent_id)
                if parent.conversation_id != conversation_id:
                    raise ValueError("parent message belongs to another conversation")
            cur = self._conn.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, thinking, status, "
                "model, created_at, tool_steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, parent_id, role, content, thinking, status, model, now,
                 json.dumps(tool_steps_to_json(tool_steps), sort_keys=True)),
            )
            message_id = cast(int, cur.lastrowid)
            for position, att in enumerate(attachments):
                self._conn.execute(
                    "INSERT INTO attachments VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        message_id,
                        position,
                        att.kind,
                        self._relative(att.path),
                        att.sha256,
                        att.name,
                        att.mime,
                    ),
                )
            self._conn.execute(
                "UPDATE conversations SET current_leaf_id = ?, updated_at = max(updated_at, ?) WHERE id = ?",
                (message_id, now, conversation_id),
            )
            return self.get_message(message_id)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        thinking: str | None = None,
        status: Status | None = None,
        stats: dict[str, Any] | None = None,
        thinking_seconds: float | None = None,
        tool_steps: Sequence[ToolStep] | None = None,
    ) -> Message:
        """Change the given fields of a message (None leaves a field as it is)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"bad status: {status!r}")
        changes: dict[str, Any] = {
            "content": content,
            "thinking": thinking,
            "status": status,
            "stats": None if stats is None else json.dumps(stats, sort_keys=True),
            "thinking_seconds": thinking_seconds,
            "tool_steps": None
            if tool_steps is None
            else json.dumps(tool_steps_to_json(tool_steps), sort_keys=True),
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        with self.batch():
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)
                self._conn.execute(
                    f"UPDATE messages SET {assignments} WHERE id = ?",
                    (*changes.values(), message_id),
                )
            return self.get_message(message_id)

    def get_message(self, message_id: int) -> Message:
        """One message; HistoryError if it does not exist."""
        row = self._one(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
        if row is None:
            raise HistoryError("This message no longer exists.")
        return self._messages([row])[0]

    def messages(self, conversation_id: int) -> list[Message]:
        """Every message of a conversation, all branches, in creation order."""
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        return self._messages(rows)

    def thread(self, conversation_id: int, leaf_id: int | None = None) -> list[Message]:
        """The branch from the root down to leaf_id (default: the conversation's current leaf)."""
        if leaf_id is None:
            leaf_id = self.get_conversation(conversation_id).current_leaf_id
            if leaf_id is None:
                return []
        rows = self._all(THREAD_SQL, (leaf_id, conversation_id))
        return self._messages(rows)

    def siblings(self, message_id: int) -> list[Message]:
        """Messages with the same parent and role (the ‹ 1/2 › choices), in creation order."""
        message = self.get_message(message_id)
        rows = self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND role = ? "
            "AND parent_id IS ? ORDER BY id",
            (message.conversation_id, message.role, message.parent_id),
        )
        return self._messages(rows)

    def select_branch(self, message_id: int) -> Message:
        """Make the newest leaf under message_id the current leaf; return that leaf.

        A child is always newer than its parent, so the newest message of the subtree is a leaf.
        """
        message = self.get_message(message_id)
        with self.batch():
            row = self._one(NEWEST_LEAF_SQL, (message_id,))
            leaf_id = int(row[0]) if row else message_id
            self._conn.execute(
                "UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                (leaf_id, message.conversation_id),
            )
        return self.get_message(leaf_id)

    def mark_interrupted(self) -> int:
        """At startup: answers left "streaming" by a crash become "interrupted"; return how many."""
        with self.batch():
            cur = self._conn.execute(
                "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'"
            )
            return cur.rowcount

    # ---- search ---------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages whose text contains every word of query (as word prefixes), best first."""
        match = fts_query(query)
        if not match:
            return []
        rows = self._all(
            """SELECT m.conversation_id, m.id, c.title,
                      snippet(messages_fts, 0, '', '', '…', 12)
               FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
               JOIN conversations c ON c.id = m.conversation_id
               WHERE messages_fts MATCH ? ORDER BY rank, m.id DESC LIMIT ?""",
            (match, limit),
        )
        return [SearchHit(*row) for row in rows]

    # ---- export / import (see transfer.py for the format) ---------------------------------

    def export_json(self, conversation_id: int) -> dict[str, Any]:
        """The whole conversation tree as a JSON-ready dict (deterministic, no local ids)."""
        return transfer.export_json(
            self.get_conversation(conversation_id), self.messages(conversation_id)
        )

    def export_markdown(self, conversation_id: int) -> str:
        """The current branch as Markdown; attachments are linked by their exported file names."""
        return transfer.export_markdown(
            self.get_conversation(conversation_id), self.thread(conversation_id)
        )

    def export_files(self, conversation_id: int, folder: Path) -> Path:
        """Write conversation.json, conversation.md and the attachment files into folder."""
        return transfer.export_files(self, conversation_id, folder)

    def import_json(self, data: dict[str, Any], attachments_dir: Path) -> Conversation:
        """Add a conversation exported by export_json; its files are read from attachments_dir."""
        return transfer.import_json(self, data, attachments_dir)

    # ---- rows <-> records -----------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        """Files inside our attachments folder are stored by name so the data folder can move."""
        return path.name if path.parent == self.attachments_dir else str(path)

    def _resolve(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.attachments_dir / path

    def _messages(self, rows: Sequence[tuple[Any, ...]]) -> list[Message]:
        return messages_from_rows(rows, self._all, self._resolve)
