"""OpenAI request fields turned into engine requests: thinking, media, grammar, stops, exposure."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from app.server.convert import (
    BadRequest,
    StopMatcher,
    engine_messages,
    grammar_for,
    sampling,
    stop_list,
    thinking_enabled,
)
from app.server.keys import key_path, load_key, save_key
from app.server.runner import ServeError, check_exposure, is_loopback
from app.server.schemas import ChatRequest, Message, ResponseFormat


def test_thinking_switches():
    assert not thinking_enabled(None, None)
    assert thinking_enabled("high", None) and thinking_enabled("low", None)
    assert not thinking_enabled("none", None)
    assert not thinking_enabled("high", {"enable_thinking": False})
    assert thinking_enabled(None, {"enable_thinking": True})


def test_data_urls_are_decoded_into_the_servers_folder_and_other_urls_refused(tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake"
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    wav = base64.b64encode(b"RIFFfake").decode()
    msgs = engine_messages([Message(role="user", content=[
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}}])], tmp_path)
    parts = msgs[0]["content"]
    assert parts[0] == {"type": "text", "text": "look"}
    image, audio = parts[1]["path"], parts[2]["path"]
    assert image.startswith(str(tmp_path)) and Path(image).read_bytes() == png
    assert audio.endswith(".wav") and Path(audio).read_bytes() == b"RIFFfake"
    for bad in ("file:///etc/passwd", "/etc/passwd", "https://example.com/a.png"):
        with pytest.raises(BadRequest, match="Only data: URLs"):
            engine_messages([Message(role="user", content=[
                {"type": "image_url", "image_url": {"url": bad}}])], tmp_path)
    with pytest.raises(BadRequest, match="not valid base64"):
        engine_messages([Message(role="user", content=[
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}])], tmp_path)
    with pytest.raises(BadRequest, match="format"):
        engine_messages([Message(role="user", content=[
            {"type": "input_audio", "input_audio": {"data": wav, "format": "ogg"}}])], tmp_path)


def test_text_only_parts_become_a_plain_string_and_roles_map(tmp_path):
    msgs = engine_messages([Message(role="developer", content="be brief"),
                            Message(role="user", content=[{"type": "text", "text": "a"},
                                                          {"type": "text", "text": "b"}])],
                           tmp_path)
    assert msgs == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ab"}]


def test_response_format_becomes_a_grammar():
    assert grammar_for(None, "root ::= \"x\"") == "root ::= \"x\""
    assert "root" in (grammar_for(ResponseFormat(type="json_object"), None) or "")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    gbnf = grammar_for(ResponseFormat(type="json_schema",
                                      json_schema={"name": "x", "schema": schema}), None)
    assert gbnf is not None and "true" in gbnf and "ok" in gbnf
    with pytest.raises(BadRequest):
        grammar_for(ResponseFormat(type="json_schema", json_schema={"name": "x"}), None)


def test_sampling_keeps_defaults_for_fields_left_out():
    body = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                       "max_completion_tokens": 7, "temperature": 0})
    params = sampling(body, None)
    assert (params.max_tokens, params.temperature, params.top_k) == (7, 0.0, 64)


def test_stop_sequences_are_cut_even_when_split_across_pieces():
    m = StopMatcher(["END"])
    out = "".join(m.feed(p) for p in ["Hello E", "N", "D and more"]) + m.flush()
    assert (out, m.hit) == ("Hello ", True)
    m = StopMatcher(["END"])
    assert "".join(m.feed(p) for p in ["EN", "x"]) + m.flush() == "ENx" and not m.hit
    assert stop_list("a") == ["a"] and stop_list(None) == []
    with pytest.raises(BadRequest):
        stop_list(["a", "b", "c", "d", "e"])


def test_other_addresses_need_a_key():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "k")
    with pytest.raises(ServeError, match="API key"):
        check_exposure("0.0.0.0", None)


def test_the_key_file_is_owner_only():
    assert load_key() is None
    path = save_key("s3cret\n")
    assert path == key_path() and load_key() == "s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
