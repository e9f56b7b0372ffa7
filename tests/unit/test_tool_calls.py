"""parse_tool_calls: every value form, strict errors, and round trips through the real template."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.chat.prompt import render_prompt
from app.core.chat.tool_calls import (
    ToolCall,
    ToolCallError,
    decode_arguments,
    format_call,
    parse_tool_calls,
)
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

Q = '<|"|>'


def one(text: str) -> ToolCall:
    calls = parse_tool_calls(text)
    assert len(calls) == 1
    return calls[0]


def test_strings_keep_quotes_braces_commas_and_newlines() -> None:
    raw = "say \"hi\", {not: an object}, [x]\nline two: 'q'"
    call = one(f"<|tool_call>call:echo{{text:{Q}{raw}{Q}}}<tool_call|>")
    assert call == ToolCall("echo", {"text": raw})


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("3.25", 3.25),
        ("-0.5", -0.5),
        ("1e-05", 1e-05),
        ("-2.5E+10", -2.5e10),
        ("12345678901234567890", 12345678901234567890),
        ("true", True),
        ("false", False),
        ("None", None),
        ("null", None),
    ],
)
def test_bare_values(literal: str, value: object) -> None:
    call = one(f"<|tool_call>call:f{{v:{literal}}}<tool_call|>")
    assert call.arguments == {"v": value}
    assert type(call.arguments["v"]) is type(value)


def test_nested_arrays_and_objects_with_bare_and_quoted_keys() -> None:
    text = (
        f"<|tool_call>call:plan{{steps:[{{id:1,tags:[{Q}a{Q},{Q}b,c{Q}]}},{{id:2,tags:[]}}],"
        f"meta:{{{Q}quoted key{Q}:{{deep:[[1,-2.0],[None,true]]}}}},empty:{{}}}}<tool_call|>"
    )
    assert one(text).arguments == {
        "steps": [{"id": 1, "tags": ["a", "b,c"]}, {"id": 2, "tags": []}],
        "meta": {"quoted key": {"deep": [[1, -2.0], [None, True]]}},
        "empty": {},
    }


def test_two_calls_in_one_message_and_surrounding_text() -> None:
    text = (
        'Let me check.<|tool_call>call:get_time{tz:<|"|>UTC<|"|>}<tool_call|>'
        "<|tool_call>call:get-weather.v2{}<tool_call|><|tool_response>"
    )
    assert parse_tool_calls(text) == [
        ToolCall("get_time", {"tz": "UTC"}),
        ToolCall("get-weather.v2", {}),
    ]


def test_close_marker_inside_a_string_is_text() -> None:
    assert one(f"<|tool_call>call:f{{s:{Q}a<tool_call|>b{Q}}}<tool_call|>").arguments == {
        "s": "a<tool_call|>b"
    }


def test_bare_body_and_no_calls() -> None:
    assert parse_tool_calls("call:f{a:1}") == [ToolCall("f", {"a": 1})]
    assert parse_tool_calls("just an answer") == []


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("<|tool_call>call:f{a:1<tool_call|>", 22, "expected '}'"),
        ("<|tool_call>call:f{a:1}", 23, "expected '<tool_call|>'"),
        ("<|tool_call>call:f{a:hello}<tool_call|>", 21, "expected a value"),
        ('<|tool_call>call:f{a:<|"|>open}<tool_call|>', 21, "unterminated string"),
        ("<|tool_call>call:{a:1}<tool_call|>", 17, "expected a function name"),
        ("<|tool_call>f{a:1}<tool_call|>", 12, "expected 'call:'"),
        ("<|tool_call>call:f{a:1,a:2}<tool_call|>", 23, "duplicate key 'a'"),
        ("<|tool_call>call:f{a:[1,]}<tool_call|>", 24, "expected a value"),
        ("<|tool_call>call:f{:1}<tool_call|>", 19, "expected a key"),
        ("<|tool_call>call:f{a:1.2.3}<tool_call|>", 24, "expected '}'"),
        ("call:f{a:1} trailing", 12, "unexpected text"),
    ],
)
def test_malformed_calls_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ToolCallError, match=message) as info:
        parse_tool_calls(text)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def render_call(arguments: Any, name: str = "tool_x") -> str:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
            ],
        },
    ]
    return render_prompt(
        CHAT_TEMPLATE, messages, enable_thinking=False, bos_token="<bos>", eos_token="<eos>"
    )


def test_rendered_call_has_the_trained_shape() -> None:
    out = render_call({"b": [1, None, True], "a": "x"})
    assert '<|turn>model\n<|tool_call>call:tool_x{a:<|"|>x<|"|>,b:[1,None,true]}<tool_call|>' in out
    assert format_call(ToolCall("tool_x", {"b": [1, None, True], "a": "x"})) in out


def test_openai_json_string_arguments_are_decoded_before_rendering() -> None:
    out = render_call(json.dumps({"city": "Paris", "days": 3}))
    assert parse_tool_calls(out) == [ToolCall("tool_x", {"city": "Paris", "days": 3})]
    assert decode_arguments("") == {}
    with pytest.raises(ValueError, match="JSON object"):
        decode_arguments("[1]")


_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_TEXT = st.text(max_size=20).filter(lambda s: '<|"|>' not in s)
_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_JSON = st.recursive(
    _LEAF,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_IDENT, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_IDENT, _JSON, max_size=5), st.booleans())
def test_round_trip_through_the_official_template(arguments: dict[str, Any], as_json: bool) -> None:
    sent: Any = json.dumps(arguments) if as_json else arguments
    assert parse_tool_calls(render_call(sent)) == [ToolCall("tool_x", arguments)]


def test_round_trip_of_every_printable_character() -> None:
    arguments = {"s": string.printable + "é✓\u2028", "n": -0.0, "big": 1e300}
    assert parse_tool_calls(render_call(arguments)) == [ToolCall("tool_x", arguments)]
