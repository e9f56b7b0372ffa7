"""The transcript: thinking streams into a collapsible block, the answer renders as Markdown."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from app.core.chat.session import ChatSession
from app.core.media.durations import spoken as format_duration
from app.core.storage.history import HistoryStore
from app.ui.chat_view import ChatView
from app.ui.markdown_view import CodeBlockWidget, Segment, TextView, split_markdown
from app.ui.messages import AssistantMessageWidget
from tests.qt.screenshots import settle


def shown(widget) -> bool:
    """Not hidden by the code (Qt shows children added to a visible parent on the next turn)."""
    return not widget.isHidden()


def _view(qtbot) -> ChatView:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_split_markdown_prose_and_code() -> None:
    text = "Intro\n\n```python\nx = 1\n```\n\nAfter"
    assert split_markdown(text) == [
        Segment("text", "Intro"),
        Segment("code", "x = 1", "python", True),
        Segment("text", "After"),
    ]
    # An open fence while streaming is a code block that is not closed yet.
    assert split_markdown("See:\n```js\nlet a = 1;\n") == [
        Segment("text", "See:"), Segment("code", "let a = 1;", "js", False)]
    # Tildes and longer fences; a shorter fence inside does not close it.
    assert split_markdown("~~~~\n~~~\n~~~~") == [Segment("code", "~~~", "", True)]
    assert split_markdown("") == []


def test_empty_state_until_first_message(qtbot) -> None:
    view = _view(qtbot)
    assert view.is_empty() and shown(view.empty_state)
    view.add_user_message("hi")
    assert shown(view.scroll_area) and not shown(view.empty_state)
    view.clear()
    assert shown(view.empty_state)


def test_thinking_streams_expanded_then_collapses_when_the_answer_starts(qtbot) -> None:
    view = _view(qtbot)
    view.add_user_message("Reverse a string in Python?")
    message = view.add_assistant_message("gemma-4-E2B")
    block = message.thinking
    assert not shown(block)  # no thinking yet: no block at all

    message.append_thinking("Slicing is ")
    message.append_thinking("the idiomatic way.")
    assert shown(block) and block.expanded and shown(block.body)
    assert block.streaming and block.header_text().startswith("Thinking…")
    assert block.text_view.toPlainText() == "Slicing is the idiomatic way."

    # Live seconds: the header shows elapsed time while the model thinks.
    block._started_at -= 3.2
    qtbot.waitUntil(lambda: block.header_text() == "Thinking… 3 s", timeout=2000)

    message.append_answer("Use `s[::-1]`.")
    assert not block.streaming and not block.expanded and not shown(block.body)
    assert block.header_text() == "Thought for 3 s"
    message.finish("complete", {"decode_tok_s": 40.0, "ttft_ms": 150.0, "completion_tokens": 9})
    assert message.markdown == "Use `s[::-1]`."
    assert "40.0 tok/s" in message.stats_label.text()
    assert shown(message.footer) and not shown(message.status_tag)

    # Click to toggle, both ways.
    block.header.click()
    assert block.expanded and shown(block.body)
    block.header.click()
    assert not block.expanded


def test_header_text_only_changes_when_the_second_changes(qtbot) -> None:
    view = _view(qtbot)
    message = view.add_assistant_message()
    message.append_thinking("hmm")
    changes: list[str] = []
    original = message.thinking.header.setText

    def record(text: str) -> None:
        changes.append(text)
        original(text)

    message.thinking.header.setText = record  # type: ignore[method-assign]
    qtbot.wait(1300)  # five ticks of the 250 ms timer
    assert len(changes) <= 2  # "Thinking… 1 s" (and at most one more), never a redraw per tick


def test_user_choice_wins_over_auto_collapse(qtbot) -> None:
    view = _view(qtbot)
    message = view.add_assistant_message()
    message.append_thinking("step one")
    message.thinking.header.click()  # the user hides the thoughts while they stream
    assert not message.thinking.expanded
    message.append_thinking(" step two")
    message.append_answer("Done.")
    assert not message.thinking.expanded  # stays as the user left it

    other = view.add_assistant_message()
    other.append_thinking("a")
    other.thinking.header.click()
    other.thinking.header.click()  # the user wants them open
    other.append_answer("b")
    assert other.thinking.expanded


def test_answer_renders_markdown_code_blocks_incrementally(qtbot) -> None:
    view = _view(qtbot)
    message = view.add_assistant_message()
    message.append_answer("Here:\n\n```python\ndef f():\n")
    message.flush()
    widgets = message.answer.segment_widgets()
    assert [type(w) for w in widgets] == [TextView, CodeBlockWidget]
    intro, code = widgets
    assert code.code == "def f():" and code.lang_label.text() == "python"

    message.append_answer("    return 1\n```\n\nDone **now**.")
    message.flush()
    later = message.answer.segment_widgets()
    # Earlier segments are the same widgets (updated in place, never rebuilt: no flicker).
    assert later[0] is intro and later[1] is code
    assert code.code == "def f():\n    return 1"
    assert isinstance(later[2], TextView) and later[2].toPlainText() == "Done now."
    assert code.body.height() > code.body.fontMetrics().lineSpacing() * 2  # both lines shown

    code.copy_button.click()
    assert QGuiApplication.clipboard().text() == "def f():\n    return 1"
    assert code.copy_button.text() == "Copied"
    message.finish("complete")
    message.copy_button.click()
    assert QGuiApplication.clipboard().text() == message.markdown


def test_deltas_in_one_event_loop_turn_render_once(qtbot) -> None:
    view = _view(qtbot)
    message = view.add_assistant_message()
    renders: list[str] = []
    original = message.answer.set_markdown
    message.answer.set_markdown = lambda md: (renders.append(md), original(md))  # type: ignore
    for piece in ("one ", "two ", "three"):
        message.append_answer(piece)
    qtbot.waitUntil(lambda: bool(renders), timeout=1000)
    assert renders == ["one two three"]


def test_stopped_and_interrupted_tags(qtbot) -> None:
    view = _view(qtbot)
    stopped = view.add_assistant_message()
    stopped.append_answer("partial")
    stopped.finish("stopped")
    assert shown(stopped.status_tag) and stopped.status_tag.text() == "Stopped"
    failed = view.add_assistant_message()
    failed.finish("error", error="The prompt is longer than the context. Start a new chat.")
    assert shown(failed.error_label) and "longer than the context" in failed.error_label.text()
    assert not shown(failed.copy_button)  # nothing to copy


def test_auto_scroll_follows_unless_the_user_scrolled_up(qtbot) -> None:
    view = _view(qtbot)
    bar = view.scroll_area.verticalScrollBar()
    message = view.add_assistant_message()
    for i in range(60):
        message.append_answer(f"Line {i} of a long answer.\n\n")
    message.flush()
    settle()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=3000)

    bar.setValue(0)  # the user scrolls up to read
    assert not view.following
    for i in range(20):
        message.append_answer(f"More {i}.\n\n")
    message.flush()
    settle()
    assert bar.value() == 0

    bar.setValue(bar.maximum())  # back at the bottom: follow again
    assert view.following
    message.append_answer("And the end.")
    message.flush()
    settle()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=3000)


def test_load_thread_from_the_real_history_store(qtbot, tmp_path) -> None:
    store = HistoryStore(tmp_path / "history.db")
    session = ChatSession(store)
    conversation = store.create_conversation()
    user, answer = session.send(conversation.id, "What is 2+2?", model="m")
    session.finish(answer.id, "**4**", "Two plus two.", "complete", {"decode_tok_s": 12.5}, 2.0)
    user2, answer2 = session.send(conversation.id, "And 3+3?", model="m")  # left "streaming"
    view = _view(qtbot)
    view.load_thread(store.thread(conversation.id))
    widgets = view.messages
    assert [type(w).__name__ for w in widgets] == [
        "UserMessageWidget", "AssistantMessageWidget", "UserMessageWidget", "AssistantMessageWidget"]
    first: AssistantMessageWidget = widgets[1]  # type: ignore[assignment]
    assert first.markdown == "**4**"
    assert shown(first.thinking) and not first.thinking.expanded
    assert first.thinking.header_text() == "Thought for 2 s"
    assert not shown(first.regenerate_button)
    last: AssistantMessageWidget = widgets[3]  # type: ignore[assignment]
    # A placeholder a crash left behind shows as interrupted, and the last answer can be redone.
    assert last.status_tag.text() == "Interrupted"
    assert not last.regenerate_button.isHidden()
    store.close()


def test_format_duration() -> None:
    assert format_duration(0.2) == "1 s"
    assert format_duration(12.4) == "12 s"
    assert format_duration(65) == "1 min 5 s"
    assert format_duration(120) == "2 min"


def test_long_prose_is_cut_at_plain_paragraph_breaks_only() -> None:
    from app.ui.markdown_view import PROSE_CHUNK_CHARS

    paragraph = "word " * 60
    text = "\n\n".join([paragraph] * 12)
    pieces = split_markdown(text)
    assert len(pieces) > 1 and all(p.kind == "text" for p in pieces)
    assert "\n\n".join(p.text for p in pieces) == text.strip("\n")
    assert all(len(p.text) <= PROSE_CHUNK_CHARS + len(paragraph) + 2 for p in pieces)
    # A loose list is never cut in two (its numbering and indentation would break).
    items = "\n\n".join(f"{i}. {paragraph}" for i in range(1, 13))
    assert len(split_markdown(items)) == 1
