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
from app.core.chat.tool_calls import decode_arguments

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


_REASONING_KEYS = ("thinking", "reasoning_content", "reasoning")


def _without_thinking(message: Message) -> dict[str, Any]:
    """Copy of an assistant message with its thinking removed (earlier turns send answers only)."""
    clean = {k: v for k, v in message.items() if k not in _REASONING_KEYS}
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


def _prepare_assistant(message: Message, *, keep_reasoning: bool) -> dict[str, Any]:
    """Answer-only copy; tool-call turns after the last user turn keep their reasoning."""
    clean = _without_thinking(message)
    calls = message.get("tool_calls")
    if not calls:
        return clean
    clean["tool_calls"] = [
        {
            **call,
            "function": {
                **call["function"],
                "arguments": decode_arguments(call["function"].get("arguments")),
            },
        }
        for call in calls
    ]
    if keep_reasoning:
        reasoning = next((message[k] for k in _REASONING_KEYS if message.get(k)), None)
        if reasoning:
            # The template reads reasoning_content/reasoning; the app stores "thinking".
            clean["reasoning_content"] = str(reasoning)
    return clean


def _attach_object_results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Move tool results that are objects onto their call message as ``tool_responses``.

    The template's role-"tool" path only takes text (a dict there is read as a list of
    parts); its ``tool_responses`` path writes an object's own keys, as the format wants.
    """
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        j = i + 1
        while j < len(messages) and messages[j].get("role") == "tool":
            j += 1
        followers = messages[i + 1 : j]
        if (
            message.get("role") == "assistant"
            and message.get("tool_calls")
            and any(isinstance(f.get("content"), Mapping) for f in followers)
        ):
            names = {c.get("id"): c["function"]["name"] for c in message["tool_calls"]}
            responses = [
                {
                    "name": names.get(f.get("tool_call_id"), f.get("name") or "unknown"),
                    "response": _tool_body(f.get("content")),
                }
                for f in followers
            ]
            out.append({**message, "tool_responses": responses})
            i = j
            continue
        out.append(message)
        i += 1
    return out


def _tool_body(content: Any) -> Any:
    if isinstance(content, (Mapping, str)):
        return content
    if isinstance(content, Sequence):
        return "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    return content


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

    messages: {"role": "system"|"user"|"assistant"|"tool", "content": str | list of parts},
    parts being {"type": "text", "text": …}, {"type": "image", …} or {"type": "audio", …}.
    Assistant messages may carry OpenAI ``tool_calls`` (``arguments`` a dict or JSON string)
    and their reasoning ("thinking"), kept only for tool-call turns after the last user turn.
    A "tool" message's content may be a dict: it renders as the object's own keys.
    """
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    try:
        prepared = _attach_object_results(
            [
                _prepare_assistant(m, keep_reasoning=i > last_user)
                if m.get("role") == "assistant"
                else dict(m)
                for i, m in enumerate(messages)
            ]
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ChatTemplateError(f"A tool call in the conversation is not valid ({exc}).") from exc
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
