"""The SSE parser and the thinking/answer router of the remote client, fed like a real stream."""

from __future__ import annotations

from app.core.engine.records import SamplingParams
from app.core.remote.client import DeltaRouter, Endpoint, request_body
from app.core.remote.sse import SSEParser

STREAM = (
    ': keep-alive\r\n\r\n'
    'data: {"a": 1}\r\n\r\n'
    'event: note\ndata: line one\ndata: line two\n\n'
    'data: [DONE]\n\n'
)


def test_events_are_the_same_however_the_stream_is_cut():
    whole = SSEParser().feed(STREAM)
    assert [(e.event, e.data) for e in whole] == [
        ("message", '{"a": 1}'), ("note", "line one\nline two"), ("message", "[DONE]")]
    for size in (1, 2, 3, 7):
        parser = SSEParser()
        pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
        cut = [e for p in pieces for e in parser.feed(p)] + parser.close()
        assert cut == whole, size


def test_a_last_event_without_its_blank_line_is_kept_at_close():
    parser = SSEParser()
    assert parser.feed('data: {"x": 2}') == []
    assert [e.data for e in parser.close()] == ['{"x": 2}']


def test_reasoning_content_and_gemma_markers_both_become_thinking():
    separated = DeltaRouter()
    out = separated.feed({"reasoning_content": "plan"}) + separated.feed({"content": "Hi"})
    assert out + separated.finish() == [("thinking", "plan"), ("answer", "Hi")]
    vllm = DeltaRouter()
    assert vllm.feed({"reasoning": "plan"}) == [("thinking", "plan")]
    marked = DeltaRouter()
    text = "<|channel>thought\nplan it<channel|>Hello"
    got = [p for ch in text for p in marked.feed({"content": ch})] + marked.finish()
    thinking = "".join(t for k, t in got if k == "thinking")
    answer = "".join(t for k, t in got if k == "answer")
    assert (thinking, answer) == ("plan it", "Hello")
    assert all("<" not in t for _, t in got)


def test_endpoint_and_request_body():
    assert Endpoint("http://h:8000").api_base == "http://h:8000/v1"
    assert Endpoint("http://h:8000/v1/").api_base == "http://h:8000/v1"
    assert Endpoint("http://h", "k").headers() == {"Authorization": "Bearer k"}
    assert Endpoint("http://h").headers() == {}
    body = request_body("m", [{"role": "user", "content": "x"}], True,
                        SamplingParams(seed=3, max_tokens=9), stream=True)
    assert body["chat_template_kwargs"] == {"enable_thinking": True}
    assert body["stream_options"] == {"include_usage": True}
    assert (body["seed"], body["max_tokens"], "grammar" in body) == (3, 9, False)
