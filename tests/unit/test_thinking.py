"""ThinkingSplitter: Gemma 4 thought channel routed incrementally, markers split anywhere."""

from __future__ import annotations

import pytest

from app.core.chat.thinking import (
    CHANNEL_CLOSE,
    CHANNEL_OPEN,
    END_MARKERS,
    ThinkingSplitter,
    split_text,
    strip_thinking,
)
from app.core.chat.tool_calls import ToolCall, parse_tool_calls

MARKERS = (CHANNEL_OPEN, CHANNEL_CLOSE, *END_MARKERS)

# (stream as the model writes it, expected thinking, expected answer)
SCENARIOS = {
    "thought-then-answer": (
        "<|channel>thought\nI'm\nthinking<channel|>Hello, world!\nWhat's up?<turn|>",
        "I'm\nthinking",
        "Hello, world!\nWhat's up?",
    ),
    "empty-thought": ("<|channel>thought<channel|>Hello", "", "Hello"),
    "empty-thought-newline": ("<|channel>thought\n<channel|>Hi there", "", "Hi there"),
    "no-thought": (
        "Plain answer, a < b and <b>bold</b> <|x <chan",
        "",
        "Plain answer, a < b and <b>bold</b> <|x <chan",
    ),
    "unclosed-thought": (
        "<|channel>thought\nstill thinking about it",
        "still thinking about it",
        "",
    ),
    "text-after-turn-end": ("<|channel>thought\nx<channel|>y<turn|>\n<|turn>user\nmore", "x", "y"),
    "gemma3-end": ("An answer.<end_of_turn>\nignored", "", "An answer."),
    "lookalikes-inside": (
        "<|channel>thought\n<channel or <|chan...<channel|>a <|channel x<turn",
        "<channel or <|chan...",
        "a <|channel x<turn",
    ),
    "stray-close-in-answer": ("answer<channel|> goes on", "", "answer goes on"),
}


def _run(pieces: list[str], expected_thinking: str, expected_answer: str) -> None:
    splitter = ThinkingSplitter()
    got = {"thinking": "", "answer": ""}
    for piece in pieces:
        for kind, text in splitter.feed(piece):
            assert text, "never an empty piece"
            got[kind] += text
            # What is shown so far must be a prefix of the truth: no partial marker ever shown.
            assert expected_thinking.startswith(got["thinking"]), (pieces, got)
            assert expected_answer.startswith(got["answer"]), (pieces, got)
    for kind, text in splitter.flush():
        got[kind] += text
    assert got == {"thinking": expected_thinking, "answer": expected_answer}, pieces


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_two_way_split(name: str) -> None:
    stream, thinking, answer = SCENARIOS[name]
    for i in range(len(stream) + 1):
        _run([stream[:i], stream[i:]], thinking, answer)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_three_way_split(name: str) -> None:
    stream, thinking, answer = SCENARIOS[name]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            _run([stream[:i], stream[i:j], stream[j:]], thinking, answer)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_one_character_at_a_time(name: str) -> None:
    stream, thinking, answer = SCENARIOS[name]
    _run(list(stream), thinking, answer)


@pytest.mark.parametrize("marker", MARKERS)
def test_each_marker_split_at_each_position_between_text(marker: str) -> None:
    stream = f"before{marker}after"
    expected = {
        CHANNEL_OPEN: ("after", "before"),
        CHANNEL_CLOSE: ("", "beforeafter"),
    }.get(marker, ("", "before"))
    _run([stream], *expected)
    for cut in range(1, len(marker)):
        pieces = ["before" + marker[:cut], marker[cut:] + "after"]
        _run(pieces, *expected)
        # The held-back part is exactly the marker prefix, nothing more.
        splitter = ThinkingSplitter()
        assert splitter.feed(pieces[0]) == [("answer", "before")]


def test_plain_text_is_not_held_back() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("Hello") == [("answer", "Hello")]
    assert splitter.feed(" world <") == [("answer", " world ")]
    assert splitter.feed("3") == [("answer", "<3")]
    assert splitter.flush() == []


def test_pieces_of_one_kind_are_merged_and_order_kept() -> None:
    splitter = ThinkingSplitter()
    out = splitter.feed("<|channel>thought\nab<channel|>cd")
    assert out == [("thinking", "ab"), ("answer", "cd")]
    assert splitter.saw_thought and not splitter.in_thinking


def test_state_properties_follow_the_stream() -> None:
    splitter = ThinkingSplitter()
    assert not splitter.in_thinking
    splitter.feed("<|channel>")
    assert splitter.in_thinking and splitter.saw_thought
    splitter.feed("thought\nhmm")
    assert splitter.in_thinking
    splitter.feed("<channel|>ok<turn|>")
    assert splitter.finished
    assert splitter.feed("more") == []
    assert splitter.flush() == []


def test_unclosed_thought_flushes_as_thinking() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<|channel>thought\nstill going <chann") == [("thinking", "still going ")]
    assert splitter.flush() == [("thinking", "<chann")]


def test_stream_cut_inside_channel_name_shows_nothing() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<|channel>tho") == []
    assert splitter.flush() == []


def test_prefilled_thought_starts_in_thinking() -> None:
    splitter = ThinkingSplitter(start_in_thinking=True)
    assert splitter.feed("pondering<channel|>Answer") == [
        ("thinking", "pondering"),
        ("answer", "Answer"),
    ]


def test_other_channel_name_is_shown_as_thinking() -> None:
    assert split_text("<|channel>analysis: x<channel|>y") == ("analysis: x", "y")


def test_strip_thinking() -> None:
    assert strip_thinking("<|channel>thought\nsecret<channel|>Visible<turn|>") == "Visible"
    assert strip_thinking("Just text") == "Just text"
    assert split_text("<|channel>thought\nA<channel|>B") == ("A", "B")


Q = '<|"|>'
CALL_A = f"<|tool_call>call:get_time{{tz:{Q}Europe/Paris{Q},n:-1.5e3}}<tool_call|>"
CALL_B = f"<|tool_call>call:echo{{s:{Q}a <tool_call|> b, {{x}}\n<turn|>{Q}}}<tool_call|>"
# (stream, thinking, answer, tool-call blocks)
TOOL_SCENARIOS = {
    "thought-then-two-calls": (
        f"<|channel>thought\nneed time<channel|>Checking.{CALL_A}{CALL_B}<|tool_response>ignored",
        "need time",
        "Checking.",
        [CALL_A, CALL_B],
    ),
    "call-between-answer-text": (f"a{CALL_A}b<turn|>", "", "ab", [CALL_A]),
    "call-inside-thought": (
        f"<|channel>thought\nx{CALL_A}y<channel|>z",
        "xy",
        "z",
        [CALL_A],
    ),
    "unclosed-call": ("ok<|tool_call>call:f{a:1", "", "ok", ["<|tool_call>call:f{a:1"]),
    "turn-end-inside-call": ("<|tool_call>call:f{a:<turn|>more", "", "", ["<|tool_call>call:f{a:"]),
    "stray-call-close": ("x<tool_call|>y", "", "xy", []),
}


def _run_tools(pieces: list[str], thinking: str, answer: str, calls: list[str]) -> None:
    splitter = ThinkingSplitter()
    got: dict[str, str] = {"thinking": "", "answer": ""}
    got_calls: list[str] = []
    for kind, text in [p for piece in pieces for p in splitter.feed(piece)] + splitter.flush():
        assert text
        if kind == "tool_call":
            got_calls.append(text)
        else:
            got[kind] += text
            assert "<|tool_call>" not in text and "<tool_call|>" not in text and Q not in text
    assert (got["thinking"], got["answer"], got_calls) == (thinking, answer, calls), pieces


@pytest.mark.parametrize("name", sorted(TOOL_SCENARIOS))
def test_tool_call_blocks_at_every_split(name: str) -> None:
    stream, *expected = TOOL_SCENARIOS[name]
    _run_tools(list(stream), *expected)  # type: ignore[arg-type]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1, 3):
            _run_tools([stream[:i], stream[i:j], stream[j:]], *expected)  # type: ignore[arg-type]


def test_tool_call_pieces_parse_and_state_is_visible() -> None:
    splitter = ThinkingSplitter()
    assert splitter.feed("<|tool_call>call:get_time{tz:") == []
    assert splitter.in_tool_call
    out = splitter.feed(f"{Q}UTC{Q}}}<tool_call|>after")
    assert not splitter.in_tool_call
    assert out[0][0] == "tool_call" and out[1] == ("answer", "after")
    assert parse_tool_calls(out[0][1]) == [ToolCall("get_time", {"tz": "UTC"})]
    assert parse_tool_calls(CALL_B)[0].arguments == {"s": "a <tool_call|> b, {x}\n<turn|>"}
    assert split_text(f"A{CALL_A}B") == ("", "AB")
