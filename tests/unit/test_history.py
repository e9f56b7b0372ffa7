"""HistoryStore on a real SQLite file: tree, branches, search, crash recovery, export/import."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.storage.history import HistoryStore, default_db_path, fts_query
from app.core.storage.records import Attachment, HistoryError, ToolCallRecord, ToolStep
from app.core.storage.schema import MIGRATIONS, SCHEMA_VERSION


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "data" / "history.db")
    yield s
    s.close()


def make_attachment(
    store: HistoryStore, data: bytes, kind: str = "image", ext: str = ".png"
) -> Attachment:
    sha = hashlib.sha256(data).hexdigest()
    path = store.attachments_dir / f"{sha}{ext}"
    path.write_bytes(data)
    mime = "image/png" if kind == "image" else "audio/wav"
    return Attachment(kind, path, sha, f"orig{ext}", mime)  # type: ignore[arg-type]


def test_default_db_path_is_in_the_private_data_folder(private_folders: Path) -> None:
    assert default_db_path().is_relative_to(private_folders)


def test_conversations_create_list_rename_delete(store: HistoryStore) -> None:
    a = store.create_conversation()
    b = store.create_conversation("Second")
    assert a.title == "New chat" and a.current_leaf_id is None
    assert [c.id for c in store.list_conversations()] == [b.id, a.id]
    store.add_message(a.id, None, "user", "hello")  # activity moves a to the top
    assert [c.id for c in store.list_conversations()] == [a.id, b.id]
    assert store.rename_conversation(a.id, "  Renamed ").title == "Renamed"
    assert store.rename_conversation(a.id, "   ").title == "New chat"
    store.delete_conversation(a.id)
    assert [c.id for c in store.list_conversations()] == [b.id]
    with pytest.raises(HistoryError):
        store.get_conversation(a.id)
    assert store.messages(a.id) == []


def test_thread_follows_the_current_leaf(store: HistoryStore) -> None:
    conv = store.create_conversation()
    u1 = store.add_message(conv.id, None, "user", "one")
    a1 = store.add_message(conv.id, u1.id, "assistant", "", status="streaming", model="m1")
    assert store.get_conversation(conv.id).current_leaf_id == a1.id
    done = store.update_message(
        a1.id,
        content="answer",
        thinking="hmm",
        status="complete",
        stats={"tok_s": 41.5},
        thinking_seconds=1.25,
    )
    assert (
        done.content,
        done.thinking,
        done.status,
        done.stats,
        done.thinking_seconds,
        done.model,
    ) == (
        "answer",
        "hmm",
        "complete",
        {"tok_s": 41.5},
        1.25,
        "m1",
    )
    u2 = store.add_message(conv.id, a1.id, "user", "two")
    assert [m.id for m in store.thread(conv.id)] == [u1.id, a1.id, u2.id]
    assert [m.id for m in store.thread(conv.id, a1.id)] == [u1.id, a1.id]
    assert store.thread(store.create_conversation().id) == []


def test_update_leaves_unnamed_fields_alone(store: HistoryStore) -> None:
    conv = store.create_conversation()
    m = store.add_message(conv.id, None, "assistant", "text", model="x")
    m2 = store.update_message(m.id, status="stopped")
    assert (m2.content, m2.status, m2.model) == ("text", "stopped", "x")
    with pytest.raises(ValueError):
        store.update_message(m.id, status="bogus")  # type: ignore[arg-type]


def test_branches_siblings_and_select(store: HistoryStore) -> None:
    conv = store.create_conversation()
    u1 = store.add_message(conv.id, None, "user", "question")
    a1 = store.add_message(conv.id, u1.id, "assistant", "first answer")
    u2 = store.add_message(conv.id, a1.id, "user", "follow-up")
    a2 = store.add_message(conv.id, u2.id, "assistant", "follow-up answer")
    # Regenerate the first answer: a sibling of a1.
    a1b = store.add_message(conv.id, u1.id, "assistant", "second answer")
    assert [m.id for m in store.siblings(a1.id)] == [a1.id, a1b.id]
    assert [m.id for m in store.thread(conv.id)] == [u1.id, a1b.id]
    # Flip back to the first answer: its newest leaf (a2) becomes current.
    assert store.select_branch(a1.id).id == a2.id
    assert [m.id for m in store.thread(conv.id)] == [u1.id, a1.id, u2.id, a2.id]
    # Edit the root question: root-level siblings.
    u1b = store.add_message(conv.id, None, "user", "edited question")
    assert [m.id for m in store.siblings(u1.id)] == [u1.id, u1b.id]
    # The newest leaf under u1 is the regenerated answer a1b (created after a2).
    assert store.select_branch(u1.id).id == a1b.id
    assert store.select_branch(u1b.id).id == u1b.id
    assert [m.id for m in store.thread(conv.id)] == [u1b.id]


def test_parent_must_be_in_the_same_conversation(store: HistoryStore) -> None:
    a, b = store.create_conversation(), store.create_conversation()
    m = store.add_message(a.id, None, "user", "x")
    with pytest.raises(ValueError):
        store.add_message(b.id, m.id, "assistant", "y")
    assert store.messages(b.id) == []


def test_crash_mid_answer_is_marked_interrupted_on_restart(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    first = HistoryStore(db)
    conv = first.create_conversation()
    user = first.add_message(conv.id, None, "user", "hi")
    first.add_message(conv.id, user.id, "assistant", "", status="streaming")
    # No close(): as after a crash; the rows are committed already.
    second = HistoryStore(db)
    assert second.mark_interrupted() == 1
    assert [m.status for m in second.thread(conv.id)] == ["complete", "interrupted"]
    assert second.mark_interrupted() == 0
    first.close()
    second.close()


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    HistoryStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(HistoryError, match="newer version"):
        HistoryStore(db)


def test_corrupt_database_gives_a_plain_error(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(HistoryError, match="cannot be opened"):
        HistoryStore(db)


def test_search_prefix_and_all_words(store: HistoryStore) -> None:
    conv = store.rename_conversation(store.create_conversation().id, "Cooking")
    m1 = store.add_message(conv.id, None, "user", "How do I bake sourdough bread?")
    m2 = store.add_message(conv.id, m1.id, "assistant", "Baking bread needs a starter.")
    hits = store.search("bread")
    assert {h.message_id for h in hits} == {m1.id, m2.id}
    assert all(h.title == "Cooking" and h.conversation_id == conv.id for h in hits)
    assert [h.message_id for h in store.search("sourd")] == [m1.id]  # prefix
    assert [h.message_id for h in store.search("bread starter")] == [m2.id]  # every word
    assert "starter" in store.search("starter")[0].snippet
    assert store.search("   ") == []


@pytest.mark.parametrize(
    "query", ['"', 'a"b', "*", "bread AND", "NEAR(", "-bread", "(x", "col:x", "^", "bread OR"]
)
def test_search_survives_any_user_input(store: HistoryStore, query: str) -> None:
    conv = store.create_conversation()
    store.add_message(conv.id, None, "user", "bread and butter")
    store.search(query)  # must not raise
    assert fts_query('say "hi"') == '"say"* """hi"""*'


def test_search_index_follows_updates_and_deletes(store: HistoryStore) -> None:
    conv = store.create_conversation()
    m = store.add_message(conv.id, None, "assistant", "", status="streaming")
    assert store.search("giraffe") == []
    store.update_message(m.id, content="A giraffe appears", status="complete")
    assert [h.message_id for h in store.search("giraffe")] == [m.id]
    store.update_message(m.id, content="An elephant appears")
    assert store.search("giraffe") == []
    store.delete_conversation(conv.id)
    assert store.search("elephant") == []


def test_delete_removes_only_unshared_attachment_files(store: HistoryStore) -> None:
    shared = make_attachment(store, b"shared-image")
    own = make_attachment(store, b"own-clip", "audio", ".wav")
    a, b = store.create_conversation(), store.create_conversation()
    store.add_message(a.id, None, "user", "x", attachments=[shared, own])
    store.add_message(b.id, None, "user", "y", attachments=[shared])
    got = store.thread(a.id)[0].attachments
    assert got == (shared, own)
    store.delete_conversation(a.id)
    assert shared.path.exists() and not own.path.exists()
    store.delete_conversation(b.id)
    assert not shared.path.exists()


def test_attachments_outside_our_folder_are_never_deleted(
    store: HistoryStore, tmp_path: Path
) -> None:
    outside = tmp_path / "user-file.png"
    outside.write_bytes(b"keep me")
    att = Attachment(
        "image", outside, hashlib.sha256(b"keep me").hexdigest(), "user-file.png", "image/png"
    )
    conv = store.create_conversation()
    store.add_message(conv.id, None, "user", "x", attachments=[att])
    assert store.thread(conv.id)[0].attachments[0].path == outside
    store.delete_conversation(conv.id)
    assert outside.exists()


def test_batch_is_all_or_nothing(store: HistoryStore) -> None:
    conv = store.create_conversation()
    with pytest.raises(RuntimeError), store.batch():
        store.add_message(conv.id, None, "user", "kept?")
        raise RuntimeError("boom")
    assert store.messages(conv.id) == []


def test_concurrent_writer_thread_and_reader(store: HistoryStore) -> None:
    conv = store.create_conversation()
    root = store.add_message(conv.id, None, "user", "root")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(200):
                store.add_message(conv.id, root.id, "assistant", f"answer {i}")
        except BaseException as exc:  # noqa: BLE001 - any failure in the thread is reported below
            errors.append(exc)

    worker = threading.Thread(target=writer)
    worker.start()
    for _ in range(200):
        store.list_conversations()
        store.thread(conv.id)
    worker.join()
    assert errors == []
    assert len(store.siblings(store.thread(conv.id)[-1].id)) == 200


def _tree_with_everything(store: HistoryStore) -> int:
    img = make_attachment(store, b"\x89PNG fake image bytes")
    clip = make_attachment(store, b"RIFF fake wav", "audio", ".wav")
    conv = store.create_conversation("Trip ✈ plans")
    store.set_overrides(conv.id, system_prompt="Be brief.", preset="Precise")
    u1 = store.add_message(conv.id, None, "user", "Where to?", attachments=[img, clip])
    a1 = store.add_message(
        conv.id, u1.id, "assistant", "", status="streaming", model="gemma-4-E4B-it-Q4_K_M"
    )
    store.update_message(
        a1.id,
        content="Lisbon.",
        thinking="Think\nabout it",
        status="complete",
        stats={"decode_tok_s": 41.2, "prompt_tokens": 12},
        thinking_seconds=2.5,
    )
    store.add_message(conv.id, u1.id, "assistant", "Porto.", status="stopped", model="gemma-4-26B")
    store.select_branch(a1.id)
    return conv.id


def test_export_import_round_trip_is_byte_identical(store: HistoryStore, tmp_path: Path) -> None:
    cid = _tree_with_everything(store)
    exported = store.export_json(cid)
    folder = store.export_files(cid, tmp_path / "export").parent
    assert json.loads((folder / "conversation.json").read_text("utf-8")) == exported

    other = HistoryStore(tmp_path / "elsewhere" / "history.db")
    other.create_conversation("pushes ids apart")
    imported = other.import_json(
        json.loads((folder / "conversation.json").read_text("utf-8")), folder
    )
    again = other.export_json(imported.id)
    assert json.dumps(again, sort_keys=True) == json.dumps(exported, sort_keys=True)
    # The files really arrived, and the same branch is selected.
    atts = other.thread(imported.id)[0].attachments
    assert [a.path.parent for a in atts] == [other.attachments_dir] * 2
    assert atts[0].path.read_bytes() == b"\x89PNG fake image bytes"
    assert [m.content for m in other.thread(imported.id)] == ["Where to?", "Lisbon."]
    # Importing into the same store works too (files already there).
    same = store.import_json(exported, folder)
    assert json.dumps(store.export_json(same.id), sort_keys=True) == json.dumps(
        exported, sort_keys=True
    )
    other.close()


def test_import_refuses_damaged_or_missing_files(store: HistoryStore, tmp_path: Path) -> None:
    cid = _tree_with_everything(store)
    folder = store.export_files(cid, tmp_path / "export").parent
    data = store.export_json(cid)
    other = HistoryStore(tmp_path / "other" / "history.db")
    image_file = folder / data["messages"][0]["attachments"][0]["file"]
    image_file.write_bytes(b"tampered")
    with pytest.raises(HistoryError, match="damaged"):
        other.import_json(data, folder)
    image_file.unlink()
    with pytest.raises(HistoryError, match="missing"):
        other.import_json(data, folder)
    assert other.list_conversations() == []  # nothing half-imported
    bad = json.loads(json.dumps(data))
    bad["messages"][0]["attachments"][0]["file"] = "../../etc/passwd"
    with pytest.raises(HistoryError):
        other.import_json(bad, folder)
    with pytest.raises(HistoryError, match="not a Gemma Desktop"):
        other.import_json({"hello": 1}, folder)
    future = dict(data, version=99)
    with pytest.raises(HistoryError, match="newer version"):
        other.import_json(future, folder)
    broken = dict(data, messages=[{"id": 1}])
    with pytest.raises(HistoryError, match="incomplete or damaged"):
        other.import_json(broken, folder)
    other.close()


def test_export_markdown_shows_the_current_branch(store: HistoryStore) -> None:
    cid = _tree_with_everything(store)
    md = store.export_markdown(cid)
    assert md.startswith(
        "# Trip ✈ plans\n\n## System\n\nBe brief.\n\n## User\n\nWhere to?\n\n![orig.png]("
    )
    assert "## Assistant (gemma-4-E4B-it-Q4_K_M)" in md
    assert "<details><summary>Thinking</summary>\n\nThink\nabout it\n\n</details>" in md
    assert "Lisbon." in md and "Porto." not in md
    assert md.endswith("Lisbon.\n")


# ---- tool calls in the history --------------------------------------------------------------

TOKYO = {"timezone": "Asia/Tokyo", "datetime": "2026-11-30T21:00:00+09:00", "is_dst": False}


def _tool_steps() -> tuple[ToolStep, ...]:
    return (
        ToolStep(
            thinking="I should look up the time.",
            content="",
            thinking_seconds=1.5,
            calls=(
                ToolCallRecord("call_1", "get_current_time", {"timezone": "Asia/Tokyo"}, TOKYO,
                               server="time", raw="<|tool_call>call:get_current_time{…}"),
                ToolCallRecord("call_2", "convert_time", {"x": [1, {"y": None}]},
                               "the user denied this tool call", is_error=True),
            ),
        ),
        ToolStep("", "Let me check again.", (
            ToolCallRecord("call_3", "broken", {}, "malformed call: at 12", is_error=True,
                           raw="<|tool_call>call:broken{<tool_call|>"),
        )),
    )


def _answer_with_tools(store: HistoryStore) -> tuple[int, int]:
    conv = store.create_conversation()
    user = store.add_message(conv.id, None, "user", "Time in Tokyo?")
    answer = store.add_message(conv.id, user.id, "assistant", "", status="streaming")
    store.update_message(answer.id, content="It is 9 pm in Tokyo.", status="complete",
                         tool_steps=_tool_steps())
    return conv.id, answer.id


def test_tool_steps_are_stored_and_read_back(store: HistoryStore) -> None:
    cid, aid = _answer_with_tools(store)
    assert store.get_message(aid).tool_steps == _tool_steps()
    assert store.thread(cid)[-1].tool_steps == _tool_steps()
    # A sibling written by regenerate has its own (no) steps; branches keep theirs.
    other = store.add_message(cid, store.get_message(aid).parent_id, "assistant", "Dunno.")
    assert other.tool_steps == ()
    store.select_branch(aid)
    assert store.thread(cid)[-1].tool_steps == _tool_steps()
    # Leaving the field out of an update keeps it.
    store.update_message(aid, content="It is 9 pm.")
    assert store.get_message(aid).tool_steps == _tool_steps()


def test_a_version_1_history_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    conn.execute("INSERT INTO conversations VALUES (1, 'Old', 1.0, 1.0, NULL, NULL, 2)")
    conn.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, status, "
                 "created_at) VALUES (1, 1, NULL, 'user', 'hi', 'complete', 1.0)")
    conn.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, status, "
                 "created_at) VALUES (2, 1, 1, 'assistant', 'hello', 'complete', 2.0)")
    conn.commit()
    conn.close()
    store = HistoryStore(db)
    thread = store.thread(1)
    assert [(m.content, m.tool_steps) for m in thread] == [("hi", ()), ("hello", ())]
    store.update_message(2, tool_steps=_tool_steps())
    assert store.get_message(2).tool_steps == _tool_steps()
    store.close()
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    check.close()


def test_export_import_carries_tool_calls(store: HistoryStore, tmp_path: Path) -> None:
    cid, _aid = _answer_with_tools(store)
    folder = store.export_files(cid, tmp_path / "export").parent
    data = json.loads((folder / "conversation.json").read_text("utf-8"))
    assert data["version"] == 2
    other = HistoryStore(tmp_path / "elsewhere" / "history.db")
    imported = other.import_json(data, folder)
    assert other.thread(imported.id)[-1].tool_steps == _tool_steps()
    assert json.dumps(other.export_json(imported.id), sort_keys=True) == json.dumps(
        store.export_json(cid), sort_keys=True)
    md = store.export_markdown(cid)
    assert "Tool call: get_current_time" in md and "+09:00" in md
    assert "Tool call: convert_time (failed)" in md and "denied" in md
    # A file exported before tools existed (version 1, no "tool_steps") still imports.
    old = json.loads(json.dumps(data))
    old["version"] = 1
    for message in old["messages"]:
        del message["tool_steps"]
    again = other.import_json(old, folder)
    assert [m.tool_steps for m in other.thread(again.id)] == [(), ()]
    other.close()


def test_engine_messages_replay_the_calls_and_results(store: HistoryStore) -> None:
    from app.core.chat.session import ChatSession

    cid, _aid = _answer_with_tools(store)
    messages = ChatSession(store).engine_messages(cid)
    assert [m["role"] for m in messages] == [
        "user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    first = messages[1]
    assert first["thinking"] == "I should look up the time."
    assert [c["function"]["name"] for c in first["tool_calls"]] == [
        "get_current_time", "convert_time"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "name": "get_current_time",
                           "content": TOKYO}
    assert messages[3]["content"] == {"error": "the user denied this tool call"}
    assert messages[-1] == {"role": "assistant", "content": "It is 9 pm in Tokyo."}
