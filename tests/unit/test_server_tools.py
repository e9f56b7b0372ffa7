"""Tools in the OpenAI layer: tool_choice checks, the call grammar (run by llama.cpp's own grammar
engine over the real Gemma 4 vocabulary), history messages with calls and results, calls read back."""

from __future__ import annotations

import ctypes
import json
import math
import re

import pytest

from app.core.chat.prompt import render_prompt
from app.core.chat.tool_grammar import tool_call_grammar
from app.server.app import _Output
from app.server.convert import BadRequest, engine_messages
from app.server.engine_port import Delta
from app.server.schemas import ChatRequest, Message
from app.server.tools import plan_tools, read_calls
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

TIME = {"type": "function", "function": {
    "name": "get_current_time", "description": "Time in a zone",
    "parameters": {"type": "object", "properties": {
        "timezone": {"type": "string", "enum": ["Asia/Tokyo", "UTC"]},
        "precise": {"type": "boolean"}},
        "required": ["timezone"]}}}
RICH = {"type": "function", "function": {
    "name": "plan_trip", "parameters": {"type": "object", "properties": {
        "City": {"type": "string", "maxLength": 12},
        "days": {"type": "integer"},
        "budget": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "hotel": {"type": "object", "properties": {"stars": {"type": "integer"}},
                  "required": ["stars"]},
        "notes": {}},
        "required": ["City", "days"]}}}
NOARGS = {"type": "function", "function": {"name": "ping"}}
CALL = '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|>'


def _req(**fields) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hi"}], **fields)


# ----- tool_choice ---------------------------------------------------------------------------


def test_auto_offers_the_tools_none_offers_nothing():
    auto = plan_tools(_req(tools=[TIME]), thinking=False)
    assert [d["function"]["name"] for d in auto.declarations] == ["get_current_time"]
    assert auto.grammar is None and auto.names == {"get_current_time"}
    none = plan_tools(_req(tools=[TIME], tool_choice="none"), thinking=False)
    assert none.declarations == [] and none.grammar is None and not none.names
    assert plan_tools(_req(), thinking=False).declarations == []
    # A declaration without description or parameters is filled in for the template.
    bare = plan_tools(_req(tools=[NOARGS]), thinking=False).declarations[0]["function"]
    assert bare == {"name": "ping", "description": ""}


def test_required_and_named_write_a_grammar():
    req = plan_tools(_req(tools=[TIME, NOARGS], tool_choice="required"), thinking=False)
    assert req.grammar and "call:get_current_time" in req.grammar and "call:ping" in req.grammar
    named = plan_tools(_req(tools=[TIME, NOARGS], tool_choice={
        "type": "function", "function": {"name": "ping"}}), thinking=True)
    assert named.grammar and "call:get_current_time" not in named.grammar
    assert named.names == {"ping"} and len(named.declarations) == 2  # both still declared
    assert "thought" in named.grammar  # thinking on: a thought may come first


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"tools": [TIME], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "not in tools"),
    ({"tool_choice": "required"}, "tool_choice", "non-empty tools"),
    ({"tools": [TIME, TIME]}, "tools[1].function.name", "declared twice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters", "type object"),
    ({"tools": [TIME], "tool_choice": "required", "response_format": {"type": "json_object"}},
     "response_format", "cannot be combined"),
    ({"tools": [TIME], "tool_choice": "required", "grammar": 'root ::= "x"'},
     "grammar", "cannot be combined"),
])
def test_bad_tool_choices_are_400_naming_the_field(fields, param, words):
    with pytest.raises(BadRequest, match=words) as caught:
        plan_tools(_req(**fields), thinking=False)
    assert caught.value.param == param and caught.value.status == 400


def test_malformed_tools_fail_validation():
    from pydantic import ValidationError

    for tools in ([{"type": "retrieval"}], ["get_time"], {"type": "function"},
                  [{"type": "function", "function": {"name": "bad name<turn|>"}}]):
        with pytest.raises(ValidationError):
            _req(tools=tools)
    with pytest.raises(ValidationError):
        _req(tools=[TIME], tool_choice="sometimes")


# ----- the grammar, run by llama.cpp over the real vocabulary --------------------------------


@pytest.fixture(scope="module")
def accepts():
    """accepts(grammar, text): llama.cpp's grammar sampler lets the model write exactly `text`
    (tokenized as the model would write it, markers as their special tokens), then stop."""
    from app.core.engine.backends import load_backends

    load_backends()
    import llama_cpp as lc
    from llama_cpp import Llama

    llm = Llama(model_path=str(synthetic_gemma4()["model"]), vocab_only=True, verbose=False)
    vocab = llm._model.vocab

    def allowed(sampler, token: int) -> bool:
        arr = (lc.llama_token_data * 1)()
        arr[0].id, arr[0].logit, arr[0].p = token, 0.0, 0.0
        data = lc.llama_token_data_array(arr, 1, -1, False)
        lc.llama_sampler_apply(sampler, ctypes.byref(data))
        return not math.isinf(arr[0].logit)

    def check(grammar: str, text: str) -> bool:
        sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert sampler, "the grammar does not parse"
        try:
            for token in llm.tokenize(text.encode(), add_bos=False, special=True):
                if not allowed(sampler, token):
                    return False
                lc.llama_sampler_accept(sampler, token)
            return allowed(sampler, lc.llama_vocab_eos(vocab))  # complete: may end here
        finally:
            lc.llama_sampler_free(sampler)

    return check


def _template_call(name: str, arguments: dict) -> str:
    """The call block exactly as the official template writes it in a prompt."""
    text = render_prompt(CHAT_TEMPLATE, [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments)}}]}],
        enable_thinking=False, bos_token="<bos>", eos_token="<eos>", add_generation_prompt=False)
    return re.search(r"<\|tool_call>.*?<tool_call\|>", text, re.S).group()


def test_the_grammar_takes_what_the_template_writes(accepts):
    grammar = tool_call_grammar([TIME, RICH, NOARGS])
    for name, args in [
        ("get_current_time", {"timezone": "Asia/Tokyo"}),
        ("get_current_time", {"timezone": "UTC", "precise": True}),
        ("plan_trip", {"City": "Kyoto, Japan", "days": 3}),
        ("plan_trip", {"City": "Oslo", "days": -2, "budget": 12.5, "tags": ["a", "b"],
                       "hotel": {"stars": 4}, "notes": {"x": [1, None, "y"], "ok": False}}),
        ("plan_trip", {"City": "Oslo", "days": 1, "budget": None}),
        ("ping", {}),
    ]:
        block = _template_call(name, args)
        assert accepts(grammar, block), block
    two = _template_call("ping", {}) + _template_call("get_current_time", {"timezone": "UTC"})
    assert accepts(grammar, two)
    assert not accepts(tool_call_grammar([TIME, NOARGS], parallel=False), two)


def test_the_grammar_refuses_what_the_schema_forbids(accepts):
    grammar = tool_call_grammar([TIME, RICH])
    good = CALL
    assert accepts(grammar, good)
    for bad in [
        "Sure! " + good,  # text before the call
        good.replace("Asia/Tokyo", "Paris"),  # not in the enum
        '<|tool_call>call:get_current_time{}<tool_call|>',  # required key missing
        good.replace("{timezone", "{zone:1,timezone"),  # undeclared key
        good.replace("get_current_time", "get_weather"),  # function not offered
        good[: -len("<tool_call|>")],  # not closed
        '<|tool_call>call:plan_trip{City:<|"|>a very long city name<|"|>,days:1}<tool_call|>',
        '<|tool_call>call:plan_trip{City:<|"|>x<|"|>,days:1.5}<tool_call|>',  # not an integer
        '<|tool_call>call:plan_trip{City:<|"|>x<|"|>,days:1,tags:[<|"|>a<|"|>,<|"|>b<|"|>,'
        '<|"|>c<|"|>,<|"|>d<|"|>]}<tool_call|>',  # more than maxItems
        '<|tool_call>call:plan_trip{days:1,City:<|"|>x<|"|>}<tool_call|>',  # not the template's order
    ]:
        assert not accepts(grammar, bad), bad
    named = tool_call_grammar([TIME, RICH], only="plan_trip")
    assert not accepts(named, good)
    # A string cannot spell a marker: the call could not be closed from inside it.
    assert not accepts(grammar, good.replace("Asia/Tokyo", "A<|\"|>}<tool_call|>"))


def test_a_thought_may_come_first_only_with_thinking(accepts):
    thought = "<|channel>thought\nThe user wants Tokyo.<channel|>"
    assert accepts(tool_call_grammar([TIME], allow_thought=True), thought + CALL)
    assert accepts(tool_call_grammar([TIME], allow_thought=True), CALL)
    assert not accepts(tool_call_grammar([TIME]), thought + CALL)


# ----- history: calls and results as input -----------------------------------------------------


def _history(*extra: dict) -> list[Message]:
    return [Message(**m) for m in [
        {"role": "user", "content": "Time in Tokyo?"},
        {"role": "assistant", "content": None, "reasoning_content": "Use the tool.",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {
             "name": "get_current_time", "arguments": '{"timezone": "Asia/Tokyo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00 JST"},
        *extra]]


def test_calls_and_results_become_the_engines_messages(tmp_path):
    msgs = engine_messages(_history(), tmp_path)
    assert msgs[1] == {"role": "assistant", "content": "", "thinking": "Use the tool.",
                       "tool_calls": [{"id": "call_1", "type": "function", "function": {
                           "name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}}]}
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_1", "content": "12:00 JST"}
    text = render_prompt(CHAT_TEMPLATE, msgs, enable_thinking=True, bos_token="<bos>",
                         eos_token="<eos>")
    # The template writes the call as the model would, then the result under the call's name;
    # the thinking of a tool-call turn after the last user turn is kept, as the template wants.
    assert CALL + '<|tool_response>response:get_current_time{value:<|"|>12:00 JST<|"|>}' \
           '<tool_response|>' in text
    assert "Use the tool." in text


@pytest.mark.parametrize(("extra", "words"), [
    ({"role": "tool", "content": "x"}, "tool_call_id is missing"),
    ({"role": "tool", "tool_call_id": "call_9", "content": "x"}, "not a call of the assistant"),
])
def test_tool_messages_must_answer_the_calls_before_them(tmp_path, extra, words):
    with pytest.raises(BadRequest, match=words):
        engine_messages(_history(extra), tmp_path)
    after_user = [Message(role="user", content="hi"),
                  Message(role="tool", tool_call_id="call_1", content="x")]
    with pytest.raises(BadRequest, match="not a call of the assistant"):
        engine_messages(after_user, tmp_path)


def test_bad_call_arguments_in_history_are_400(tmp_path):
    for arguments in ("{not json", "[1, 2]"):
        msgs = [Message(role="user", content="hi"), Message(
            role="assistant", tool_calls=[{"id": "c", "function": {
                "name": "f", "arguments": arguments}}])]
        with pytest.raises(BadRequest, match="JSON object") as caught:
            engine_messages(msgs, tmp_path)
        assert caught.value.param == "messages[1].tool_calls[0].function.arguments"
    with pytest.raises(BadRequest, match="only assistant"):
        engine_messages([Message(role="user", content="x", tool_calls=[
            {"id": "c", "function": {"name": "f"}}])], tmp_path)


# ----- the model's calls read back ----------------------------------------------------------------


def test_calls_are_read_as_openai_entries_and_bad_blocks_are_not():
    calls = read_calls(CALL, frozenset({"get_current_time"}))
    assert calls is not None and len(calls) == 1
    entry = calls[0].entry()
    assert re.fullmatch(r"call_[0-9a-f]{24}", entry["id"]) and entry["type"] == "function"
    assert entry["function"] == {"name": "get_current_time",
                                 "arguments": '{"timezone": "Asia/Tokyo"}'}
    assert read_calls(CALL, frozenset({"other"})) is None  # a function not offered
    assert read_calls(CALL, frozenset()) is None  # no tools offered
    assert read_calls(CALL.replace("<|\"|>Asia/Tokyo<|\"|>", "Tokyo"),
                      frozenset({"get_current_time"})) is None  # malformed


def test_output_turns_deltas_into_message_deltas():
    out = _Output(frozenset({"get_current_time"}))
    assert out.deltas(Delta("thinking", "hm")) == [{"reasoning_content": "hm"}]
    assert out.deltas(Delta("answer", "ok")) == [{"content": "ok"}]
    first, second = out.deltas(Delta("tool_call", CALL))
    call = out.calls[0]
    assert first == {"tool_calls": [{"index": 0, "id": call.id, "type": "function",
                                     "function": {"name": "get_current_time", "arguments": ""}}]}
    assert second == {"tool_calls": [{"index": 0, "function": {
        "arguments": '{"timezone": "Asia/Tokyo"}'}}]}
    assert out.deltas(Delta("tool_call", CALL))[0]["tool_calls"][0]["index"] == 1
    broken = '<|tool_call>call:get_current_time{timezone:Tokyo}'
    assert out.deltas(Delta("tool_call", broken)) == [{"content": broken}]
    assert len(out.calls) == 2
