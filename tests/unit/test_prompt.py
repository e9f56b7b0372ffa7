"""render_prompt with a Gemma-4-shaped template, and the plain fallback for base models."""

from __future__ import annotations

import re

import pytest

from app.core.chat.prompt import ChatTemplateError, plain_prompt, render_prompt
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

BOS, EOS = "<bos>", "<eos>"


def render(messages: list[dict], *, thinking: bool, **kw: object) -> str:
    return render_prompt(
        CHAT_TEMPLATE, messages, enable_thinking=thinking, bos_token=BOS, eos_token=EOS, **kw
    )


def test_single_user_turn_thinking_off_prefills_empty_thought() -> None:
    out = render([{"role": "user", "content": "Hi there"}], thinking=False)
    assert out == "<bos><|turn>user\nHi there<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"


def test_thinking_on_adds_think_system_turn_and_open_generation_prompt() -> None:
    out = render([{"role": "user", "content": "Hi"}], thinking=True)
    assert out == "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"


def test_system_prompt_with_and_without_thinking() -> None:
    messages = [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "Q"}]
    assert render(messages, thinking=True) == (
        "<bos><|turn>system\n<|think|>\nBe brief.<turn|>\n<|turn>user\nQ<turn|>\n<|turn>model\n"
    )
    assert render(messages, thinking=False) == (
        "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nQ<turn|>\n"
        "<|turn>model\n<|channel>thought\n<channel|>"
    )


def test_multi_turn_strips_thinking_of_earlier_answers() -> None:
    messages = [
        {"role": "user", "content": "One?"},
        # Thinking given both ways the app might hold it: a separate key and raw channel text.
        {
            "role": "assistant",
            "content": "<|channel>thought\nhidden<channel|>First.",
            "thinking": "x",
        },
        {"role": "user", "content": "Two?"},
    ]
    out = render(messages, thinking=True)
    assert out == (
        "<bos><|turn>system\n<|think|>\n<turn|>\n"
        "<|turn>user\nOne?<turn|>\n<|turn>model\nFirst.<turn|>\n"
        "<|turn>user\nTwo?<turn|>\n<|turn>model\n"
    )
    assert "hidden" not in out
    # The caller's messages are not modified.
    assert messages[1]["content"].startswith("<|channel>")


def test_image_and_audio_parts_become_placeholders() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image", "path": "/tmp/a.png"},
                {"type": "audio", "path": "/tmp/b.wav"},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
    out = render(messages, thinking=False)
    assert out == (
        "<bos><|turn>user\n<|image|><|audio|>What is this?<turn|>\n"
        "<|turn>model\n<|channel>thought\n<channel|>"
    )


def test_no_generation_prompt() -> None:
    out = render([{"role": "user", "content": "Hi"}], thinking=False, add_generation_prompt=False)
    assert out == "<bos><|turn>user\nHi<turn|>\n"


def test_tools_reach_the_template() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Time now",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City"}},
                    "required": ["city"],
                },
            },
        }
    ]
    out = render([{"role": "user", "content": "t?"}], thinking=False, tools=tools)
    assert out == (
        '<bos><|turn>system\n<|tool>declaration:get_time{description:<|"|>Time now<|"|>,'
        'parameters:{properties:{city:{description:<|"|>City<|"|>,type:<|"|>STRING<|"|>}},'
        'required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
        "<|turn>user\nt?<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"
    )


def test_hf_helpers_are_available() -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{{ m | tojson }}{% endfor %}|{{ strftime_now('%Y') }}|{{ eos_token }}"
    )
    out = render_prompt(
        template,
        [{"role": "user", "content": "é<>"}, {"role": "user", "content": "no"}],
        enable_thinking=False,
        bos_token="B",
        eos_token="E",
    )
    assert re.fullmatch(r'B\{"role": "user", "content": "é<>"\}\|\d{4}\|E', out), out


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    template = "{% for m in messages %}\n    {% if true %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}"
    out = render_prompt(
        template,
        [{"role": "user", "content": "a"}],
        enable_thinking=False,
        bos_token="",
        eos_token="",
    )
    assert out == "[a]\n"


def test_raise_exception_becomes_a_plain_error() -> None:
    template = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Roles must alternate') }}{% endif %}"
    with pytest.raises(ChatTemplateError, match="Roles must alternate"):
        render_prompt(
            template,
            [{"role": "assistant", "content": "a"}],
            enable_thinking=False,
            bos_token="",
            eos_token="",
        )


def test_syntax_error_and_sandbox_violations_are_reported() -> None:
    with pytest.raises(ChatTemplateError):
        render_prompt("{% for %}", [], enable_thinking=False, bos_token="", eos_token="")
    with pytest.raises(ChatTemplateError):
        render_prompt(
            "{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}",
            [],
            enable_thinking=False,
            bos_token="",
            eos_token="",
        )


def test_plain_prompt_shape() -> None:
    out = plain_prompt(
        [
            {"role": "system", "content": "You are kind."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "<|channel>thought\nhmm<channel|>Hi!"},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this?"}]},
        ]
    )
    assert out == (
        "You are kind.\n\nUser: Hello\n\nAssistant: Hi!\n\nUser: [image]\nAnd this?\n\nAssistant:"
    )


def test_plain_prompt_without_system() -> None:
    assert plain_prompt([{"role": "user", "content": "Hi"}]) == "User: Hi\n\nAssistant:"


def _tool_turn(thinking: str, arguments: object, call_id: str = "c1") -> dict:
    call = {"id": call_id, "type": "function", "function": {"name": "f", "arguments": arguments}}
    return {"role": "assistant", "content": "", "thinking": thinking, "tool_calls": [call]}


def test_thinking_of_tool_call_turns_is_kept_only_after_the_last_user_turn() -> None:
    messages = [
        {"role": "user", "content": "first"},
        _tool_turn("old plan", {"a": 1}),
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "assistant", "content": "<|channel>thought\nhidden<channel|>done"},
        {"role": "user", "content": "second"},
        _tool_turn("new plan", '{"a": 2}', "c2"),
        {"role": "tool", "tool_call_id": "c2", "content": "r2"},
    ]
    out = render(messages, thinking=True)
    assert "old plan" not in out and "hidden" not in out
    assert out.endswith(
        "<|turn>user\nsecond<turn|>\n<|turn>model\n<|channel>thought\nnew plan\n<channel|>"
        "<|tool_call>call:f{a:2}<tool_call|>"
        '<|tool_response>response:f{value:<|"|>r2<|"|>}<tool_response|>'
    )
    assert '<|tool_call>call:f{a:1}<tool_call|><|tool_response>response:f{value:<|"|>r1<|"|>}' in out


def test_object_results_render_by_key_and_mixed_results_keep_their_order() -> None:
    turn = _tool_turn("", {"a": 1})
    turn["tool_calls"].append({"id": "c2", "function": {"name": "g", "arguments": {}}})
    messages = [
        {"role": "user", "content": "go"},
        turn,
        {"role": "tool", "tool_call_id": "c1", "content": {"error": 'bad "x"', "n": [1, None]}},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "ok"}]},
    ]
    out = render(messages, thinking=False, add_generation_prompt=True)
    assert out.endswith(
        '<|tool_response>response:f{error:<|"|>bad "x"<|"|>,n:[1,None]}<tool_response|>'
        '<|tool_response>response:g{value:<|"|>ok<|"|>}<tool_response|>'
    )


def test_invalid_tool_call_arguments_are_a_template_error() -> None:
    messages = [{"role": "user", "content": "go"}, _tool_turn("", "{not json")]
    with pytest.raises(ChatTemplateError, match="tool call in the conversation is not valid"):
        render(messages, thinking=False)
