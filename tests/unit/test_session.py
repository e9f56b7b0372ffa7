"""ChatSession on a real HistoryStore: send, regenerate, edit and resend, engine messages."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.chat.prompt import render_prompt
from app.core.chat.session import ChatSession, title_from
from app.core.storage.history import HistoryStore
from app.core.storage.records import Attachment
from tests.fixtures.gemma4_template import CHAT_TEMPLATE


@pytest.fixture
def session(tmp_path: Path) -> Iterator[ChatSession]:
    store = HistoryStore(tmp_path / "history.db")
    yield ChatSession(store)
    store.close()


def image(session: ChatSession, data: bytes = b"png bytes") -> Attachment:
    sha = hashlib.sha256(data).hexdigest()
    path = session.store.attachments_dir / f"{sha}.png"
    path.write_bytes(data)
    return Attachment("image", path, sha, "cat.png", "image/png")


def test_send_stores_both_at_once_and_titles_the_chat(session: ChatSession, tmp_path: Path) -> None:
    conv = session.store.create_conversation()
    user, answer = session.send(conv.id, "What is the capital of Portugal, and why?", model="E4B")
    assert (user.role, user.status, answer.role, answer.status, answer.model) == (
        "user",
        "complete",
        "assistant",
        "streaming",
        "E4B",
    )
    assert answer.parent_id == user.id
    # Another connection sees both rows: they are on disk, not in a pending transaction.
    other = HistoryStore(tmp_path / "history.db")
    assert [m.id for m in other.thread(conv.id)] == [user.id, answer.id]
    assert other.get_conversation(conv.id).title == "What is the capital of Portugal, and…"
    other.close()
    session.finish(answer.id, "Lisbon.", "thinking...", "complete", {"decode_tok_s": 40.0}, 0.5)
    session.send(conv.id, "Second question", model="E4B")
    assert session.store.get_conversation(conv.id).title == "What is the capital of Portugal, and…"


def test_title_rules() -> None:
    assert title_from("  Short one \nsecond line") == "Short one"
    assert title_from("x" * 60) == "x" * 40 + "…"
    assert title_from("") == "New chat"
    att = Attachment("audio", Path("a.wav"), "0" * 64, "a.wav", "audio/wav")
    assert title_from("", [att]) == "Voice message"


def test_follow_up_goes_after_the_current_leaf(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    u1, a1 = session.send(conv.id, "one", model="m")
    session.finish(a1.id, "first", "", "complete")
    u2, a2 = session.send(conv.id, "two", model="m")
    assert u2.parent_id == a1.id
    assert [m.id for m in session.store.thread(conv.id)] == [u1.id, a1.id, u2.id, a2.id]


def test_regenerate_makes_a_sibling_answer(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    user, a1 = session.send(conv.id, "q", model="small")
    session.finish(a1.id, "first", "", "complete")
    a2 = session.regenerate(a1.id, model="big")
    assert (a2.parent_id, a2.status, a2.model) == (user.id, "streaming", "big")
    assert [m.id for m in session.store.siblings(a1.id)] == [a1.id, a2.id]
    assert session.store.get_conversation(conv.id).current_leaf_id == a2.id
    with pytest.raises(ValueError):
        session.regenerate(user.id)


def test_edit_and_resend_keeps_the_old_branch(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    att = image(session)
    u1, a1 = session.send(conv.id, "first wording", [att], model="m")
    session.finish(a1.id, "answer one", "", "complete")
    u1b, a1b = session.edit_and_resend(u1.id, "better wording")
    assert u1b.parent_id is None and u1b.attachments == (att,)
    assert [m.id for m in session.store.siblings(u1.id)] == [u1.id, u1b.id]
    assert [m.content for m in session.store.thread(conv.id)] == ["better wording", ""]
    session.store.select_branch(u1.id)
    assert [m.content for m in session.store.thread(conv.id)] == ["first wording", "answer one"]
    with pytest.raises(ValueError):
        session.edit_and_resend(a1.id, "nope")


def test_engine_messages_shape(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    att = image(session)
    u1, a1 = session.send(conv.id, "Look", [att], model="m")
    session.finish(a1.id, "A cat.", "I see fur", "complete")
    u2, a2 = session.send(conv.id, "Sure?", model="m")
    msgs = session.engine_messages(conv.id, a2.id, system_prompt="Be kind.")
    assert msgs == [
        {"role": "system", "content": "Be kind."},
        {
            "role": "user",
            "content": [{"type": "image", "path": str(att.path)}, {"type": "text", "text": "Look"}],
        },
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"},
    ]
    # The conversation's own prompt wins over the settings one; "" switches it off.
    session.store.set_overrides(conv.id, system_prompt="Be terse.", preset=None)
    assert session.engine_messages(conv.id, system_prompt="Be kind.")[0] == {
        "role": "system",
        "content": "Be terse.",
    }
    session.store.set_overrides(conv.id, system_prompt="", preset=None)
    assert session.engine_messages(conv.id, system_prompt="Be kind.")[0]["role"] == "user"


def test_failed_answers_are_left_out(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    _, a1 = session.send(conv.id, "one", model="m")
    session.finish(a1.id, "", "", "error")
    _, a2 = session.send(conv.id, "two", model="m")
    roles = [m["role"] for m in session.engine_messages(conv.id)]
    assert roles == ["user", "user"]


def test_engine_messages_render_with_the_gemma4_template(session: ChatSession) -> None:
    conv = session.store.create_conversation()
    _, a1 = session.send(conv.id, "Hi", model="m")
    session.finish(a1.id, "Hello!", "greeting the user", "complete")
    session.send(conv.id, "Bye", model="m")
    prompt = render_prompt(
        CHAT_TEMPLATE,
        session.engine_messages(conv.id),
        enable_thinking=True,
        bos_token="<bos>",
        eos_token="<eos>",
    )
    assert prompt == (
        "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n"
        "<|turn>model\nHello!<turn|>\n<|turn>user\nBye<turn|>\n<|turn>model\n"
    )
