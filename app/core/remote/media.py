"""The app's messages (attachments as file paths) as OpenAI messages (media inline, base64)."""

from __future__ import annotations

import base64
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


def to_openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Image and audio parts (local files the user attached) become data the server can read."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": [_part(p) for p in content]}
        out.append(message)
    return out
