"""OpenAI request fields -> engine requests: messages, media (data only), thinking, grammar, stops."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from app.core.chat.tool_calls import decode_arguments
from app.core.engine.records import SamplingParams
from app.server.schemas import ChatRequest, CompletionRequest, Message, ResponseFormat, ToolCallIn

MAX_MEDIA_BYTES = 20 * 1024 * 1024  # one decoded image or audio clip
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_IMAGE_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
              "image/bmp": ".bmp"}
_AUDIO_EXT = {"wav": ".wav", "mp3": ".mp3", "flac": ".flac"}
_EFFORT_OFF = {"none", "minimal"}


class BadRequest(ValueError):
    """A request the server refuses with 400; `param` names the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def thinking_enabled(effort: str | None, kwargs: dict[str, Any] | None) -> bool:
    """`chat_template_kwargs.enable_thinking` wins; else any effort but none/minimal turns it on."""
    if kwargs and "enable_thinking" in kwargs:
        return bool(kwargs["enable_thinking"])
    return effort is not None and effort.lower() not in _EFFORT_OFF


def _decode(data: str, param: str) -> bytes:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{param} is not valid base64.", param) from exc
    if len(raw) > MAX_MEDIA_BYTES:
        raise BadRequest(f"{param} is larger than {MAX_MEDIA_BYTES // (1024 * 1024)} MB.", param,
                         413, "request_too_large")
    return raw


def _store(raw: bytes, suffix: str, media_dir: Path) -> str:
    """Write media under the server's own folder, named by content (no client name is used)."""
    path = media_dir / (hashlib.sha256(raw).hexdigest() + suffix)
    if not path.exists():
        path.write_bytes(raw)
    return str(path)


def _image(part: dict[str, Any], param: str, media_dir: Path) -> dict[str, Any]:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise BadRequest(f"{param}.image_url.url is missing.", param)
    match = _DATA_URL.match(url)
    if match is None:
        raise BadRequest("Only data: URLs (base64) are accepted for images; file paths and "
                         "remote URLs are refused.", param)
    mime = (match.group(1) or "image/png").lower()
    if not mime.startswith("image/"):
        raise BadRequest(f"{param} is {mime}, not an image.", param)
    raw = _decode(url[match.end():], param)
    return {"type": "image", "path": _store(raw, _IMAGE_EXT.get(mime, ".img"), media_dir)}


def _audio(part: dict[str, Any], param: str, media_dir: Path) -> dict[str, Any]:
    audio = part.get("input_audio")
    if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
        raise BadRequest(f"{param}.input_audio needs base64 `data` and a `format`.", param)
    fmt = str(audio.get("format", "wav")).lower()
    if fmt not in _AUDIO_EXT:
        raise BadRequest(f"{param}.input_audio.format {fmt!r} is not one of "
                         f"{', '.join(_AUDIO_EXT)}.", param)
    raw = _decode(audio["data"], param)
    return {"type": "audio", "path": _store(raw, _AUDIO_EXT[fmt], media_dir)}


def _content(message: Message, index: int, media_dir: Path) -> str | list[dict[str, Any]]:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        param = f"messages[{index}].content[{j}]"
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            parts.append(_image(part, param, media_dir))
        elif kind == "input_audio":
            parts.append(_audio(part, param, media_dir))
        else:
            raise BadRequest(f"{param}.type {kind!r} is not supported (text, image_url, "
                             "input_audio).", param)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def engine_messages(messages: list[Message], media_dir: Path) -> list[dict[str, Any]]:
    """The conversation as the engine takes it (the shape prompt.py renders); media decoded.

    Assistant messages keep their `tool_calls` (arguments decoded from JSON text to the object
    the template writes) and their reasoning (as "thinking"; prompt.py keeps it only where the
    template wants it); each `tool` message must answer a call of the assistant message just
    before it (with only tool messages between), as the OpenAI API requires.
    """
    out: list[dict[str, Any]] = []
    open_calls: set[str] = set()  # call ids the following tool messages may answer
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if message.tool_calls and message.role != "assistant":
            raise BadRequest(f"{param}: only assistant messages carry tool_calls.",
                             f"{param}.tool_calls")
        if message.role == "tool":
            out.append(_tool_result(message, i, open_calls, media_dir))
            continue
        role = "system" if message.role == "developer" else message.role
        entry: dict[str, Any] = {"role": role, "content": _content(message, i, media_dir)}
        open_calls = set()
        if message.role == "assistant":
            if message.reasoning_content:
                entry["thinking"] = message.reasoning_content
            if message.tool_calls:
                entry["tool_calls"] = [_call_in(call, f"{param}.tool_calls[{j}]")
                                       for j, call in enumerate(message.tool_calls)]
                open_calls = {call.id for call in message.tool_calls}
        out.append(entry)
    return out


def _call_in(call: ToolCallIn, param: str) -> dict[str, Any]:
    try:
        arguments = decode_arguments(call.function.arguments)
    except ValueError as exc:  # bad JSON, or JSON that is not an object
        raise BadRequest(f"{param}.function.arguments must be a JSON object ({exc}).",
                         f"{param}.function.arguments") from exc
    return {"id": call.id, "type": "function",
            "function": {"name": call.function.name, "arguments": arguments}}


def _tool_result(message: Message, index: int, open_calls: set[str],
                 media_dir: Path) -> dict[str, Any]:
    param = f"messages[{index}]"
    if not message.tool_call_id:
        raise BadRequest(f"{param}.tool_call_id is missing: a tool message answers one call of "
                         "the assistant message before it.", f"{param}.tool_call_id")
    if message.tool_call_id not in open_calls:
        raise BadRequest(f"{param} answers tool call {message.tool_call_id!r}, which is not a "
                         "call of the assistant message just before it.", f"{param}.tool_call_id")
    content = _content(message, index, media_dir)
    if not isinstance(content, str):
        raise BadRequest(f"{param}: a tool result is text; images and audio are not accepted "
                         "there.", f"{param}.content")
    # Text stays text: the engine tokenizes content (tool results too) without control tokens.
    return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}


def grammar_for(fmt: ResponseFormat | None, grammar: str | None) -> str | None:
    """A GBNF grammar for `response_format` (json_object / json_schema) or the raw `grammar`."""
    from llama_cpp.llama_grammar import JSON_GBNF

    if fmt is None or fmt.type == "text":
        return grammar
    if fmt.type == "json_object":
        return str(JSON_GBNF) if fmt.schema_ is None else _schema(fmt.schema_)
    spec = fmt.json_schema or {}
    schema = spec.get("schema", spec if "type" in spec or "properties" in spec else None)
    if not isinstance(schema, dict):
        raise BadRequest("response_format.json_schema.schema is missing.", "response_format")
    return _schema(schema)


def _schema(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # noqa: BLE001 - the converter raises many kinds on bad schemas
        raise BadRequest(f"response_format: this JSON schema cannot be turned into a grammar "
                         f"({exc}).", "response_format") from exc


def sampling(body: ChatRequest | CompletionRequest, grammar: str | None) -> SamplingParams:
    """Engine sampler settings; fields the client left out keep the app's defaults."""
    defaults = SamplingParams()
    limit = getattr(body, "max_completion_tokens", None) or body.max_tokens
    return SamplingParams(
        temperature=_pick(body.temperature, defaults.temperature),
        top_p=_pick(body.top_p, defaults.top_p),
        top_k=_pick(body.top_k, defaults.top_k),
        min_p=_pick(body.min_p, defaults.min_p),
        max_tokens=limit or defaults.max_tokens,
        seed=body.seed,
        grammar=grammar,
    )


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if len(items) > 4:
        raise BadRequest("stop takes at most 4 sequences.", "stop")
    return [s for s in items if s]


class StopMatcher:
    """Holds back answer text that could be the start of a stop sequence; cuts at a match."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = stops
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if not self._stops or self.hit:
            return "" if self.hit else text
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit, self._held = True, ""
            return buf[:cut]
        keep = 0
        for s in self._stops:
            for size in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:size]):
                    keep = max(keep, size)
                    break
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep] if keep else buf

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.hit else held
