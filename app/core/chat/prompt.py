"""Build the prompt text from a model's own chat template (Jinja), as HF transformers does.

The rendered prompt already starts with the BOS token (templates write ``bos_token`` at the
top), so the engine must tokenize it with ``add_bos=False`` and ``special=True``.
``plain_prompt`` is the fallback for base models that carry no template; its text has no BOS,
so tokenize that one with ``add_bos=True``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.chat.thinking import strip_thinking

Message = Mapping[str, Any]


class ChatTemplateError(ValueError):
    """The model's chat template could not render these messages."""


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson escapes HTML characters, which chat templates do not expect.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(chat_template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(chat_template)


def _without_thinking(message: Message) -> dict[str, Any]:
    """Copy of an assistant message with its thinking removed (earlier turns send answers only)."""
    clean = {
        k: v for k, v in message.items() if k not in ("thinking", "reasoning_content", "reasoning")
    }
    content = clean.get("content")
    if isinstance(content, str):
        clean["content"] = strip_thinking(content)
    elif isinstance(content, Sequence):
        clean["content"] = [
            {**part, "text": strip_thinking(str(part.get("text", "")))}
            if part.get("type") == "text"
            else dict(part)
            for part in content
        ]
    return clean


def render_prompt(
    chat_template: str,
    messages: Sequence[Message],
    *,
    enable_thinking: bool,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Render messages with the model's chat template; raise ChatTemplateError on failure.

    messages: {"role": "system"|"user"|"assistant", "content": str | list of parts}, parts
    being {"type": "text", "text": …}, {"type": "image", …} or {"type": "audio", …}.
    """
    prepared = [_without_thinking(m) if m.get("role") == "assistant" else dict(m) for m in messages]
    try:
        template = _compile(chat_template)
        return template.render(
            messages=prepared,
            tools=list(tools) if tools else None,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except jinja2.exceptions.TemplateError as exc:
        raise ChatTemplateError(
            f"The model's chat template could not build the prompt ({exc}). "
            "Try another model file, or report the model's template."
        ) from exc


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content.strip()
    pieces: list[str] = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            pieces.append(str(part.get("text", "")).strip())
        elif kind in ("image", "audio", "video"):
            pieces.append(f"[{kind}]")
    return "\n".join(p for p in pieces if p)


def plain_prompt(messages: Sequence[Message]) -> str:
    """Prompt for base models without a chat template.

    Shape: the system text (if any) and a blank line, then one "User: …" / "Assistant: …"
    paragraph per turn separated by blank lines, ending with "Assistant:" for the model to
    continue. Media parts become "[image]" / "[audio]" (a base model cannot see them).
    Thinking is stripped from earlier assistant turns.
    """
    blocks: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            text = _text_of(_without_thinking(message)["content"])
            blocks.append(f"Assistant: {text}")
        elif role == "system":
            text = _text_of(message.get("content", ""))
            if text:
                blocks.append(text)
        else:
            blocks.append(f"User: {_text_of(message.get('content', ''))}")
    blocks.append("Assistant:")
    return "\n\n".join(blocks)
