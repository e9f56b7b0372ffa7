"""The app's messages (attachments as file paths) as OpenAI messages (media inline, base64)."""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

AUDIO_FORMATS = {".wav": "wav", ".mp3": "mp3"}  # what OpenAI's `input_audio.format` names


def _part(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "image":
        path = Path(str(part["path"]))
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if kind == "audio":
        path = Path(str(part["path"]))
        fmt = AUDIO_FORMATS.get(path.suffix.lower(), "wav")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    return part


def _call(call: Any) -> Any:
    """A replayed tool call: OpenAI's `arguments` is a JSON string (the app keeps the object)."""
    if isinstance(call, dict) and isinstance(call.get("function"), dict) \
            and not isinstance(call["function"].get("arguments"), str):
        function = {**call["function"], "arguments": json.dumps(call["function"].get("arguments")
                                                                 or {})}
        return {**call, "function": function}
    return call


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Image and audio parts (local files the user attached) become data the server can read;
    replayed tool calls carry their arguments, and tool results their objects, as JSON text; the
    app's own `thinking` field of
    earlier answers stays here (servers neither want nor replay it)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        message = {k: v for k, v in message.items() if k != "thinking"}
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [_part(p) for p in content]
        if message.get("role") == "tool" and not isinstance(message.get("content"), str | list):
            message["content"] = json.dumps(message.get("content"))  # a tool's result object
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [_call(c) for c in message["tool_calls"]]
        out.append(message)
    return out
