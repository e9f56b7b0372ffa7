"""Tool calls from OpenAI-compatible servers become Gemma's own blocks (what the agent loop reads),
and replayed calls go back with their arguments as JSON text."""

from __future__ import annotations

import json

from app.core.chat.tool_calls import parse_tool_calls
from app.core.engine.records import SamplingParams
from app.core.remote.client import DeltaRouter, request_body
from app.core.remote.media import to_openai_messages


def test_streamed_tool_call_fragments_become_one_gemma_block_each():
    router = DeltaRouter()
    pieces = []
    for delta in (
        {"content": "Let me check."},
        {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                         "function": {"name": "get_current_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"timezone": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Asia/Tokyo"}'}}]},
        {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "add",
                                                              "arguments": '{"a": 1, "b": 2}'}}]},
    ):
        pieces += router.feed(delta)
    pieces += router.finish()
    assert pieces[0] == ("answer", "Let me check.")
    blocks = [text for kind, text in pieces if kind == "tool_call"]
    assert len(blocks) == 2
    calls = parse_tool_calls("".join(blocks))
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_current_time", {"timezone": "Asia/Tokyo"}), ("add", {"a": 1, "b": 2})]


def test_arguments_that_are_not_json_stay_malformed_for_the_loop_to_report():
    router = DeltaRouter()
    router.feed({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{oops"}}]})
    ((kind, text),) = router.finish()
    assert kind == "tool_call" and text == "<|tool_call>call:f{oops<tool_call|>"


def test_tools_are_offered_and_replayed_calls_carry_json_text():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = request_body("m", [{"role": "user", "content": "hi"}], False, SamplingParams(), True,
                        tools)
    assert body["tools"] == tools
    assert "tools" not in request_body("m", [], False, SamplingParams(), True)
    replay = to_openai_messages([
        {"role": "assistant", "content": "", "thinking": "hmm", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "2"},
        {"role": "tool", "tool_call_id": "c2", "name": "f", "content": {"error": "no"}}])
    assert "thinking" not in replay[0]
    assert json.loads(replay[0]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert replay[1] == {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "2"}
    assert json.loads(replay[2]["content"]) == {"error": "no"}
