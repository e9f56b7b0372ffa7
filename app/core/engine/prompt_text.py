"""Keep text text: which parts of a rendered prompt came from the template, and which from people.

Only the chat template's own markers may become control tokens. Text written by the user, read
from a file or returned by a tool is tokenized as plain text, so typing ``<turn|>`` cannot end a
turn. Careful servers do the same: render the template once with every piece of content wrapped
in two marks that occur nowhere else, split the result at the marks, and tokenize the template's
pieces with special tokens parsed and the content pieces without.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Segment = tuple[str, bool]  # (text, came from content)

# Private-use characters: no tokenizer gives them meaning, and no template touches them.
_MARK_CANDIDATES = [chr(c) for c in range(0xE000, 0xE100)]


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """`value` with `fn` applied to every string inside it (dict keys stay as they are)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return value


def _map_message(message: Mapping[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    copy = dict(message)
    content = message.get("content")
    if isinstance(content, list):  # parts: only text parts carry text
        copy["content"] = [
            {**part, "text": fn(str(part.get("text", "")))}
            if isinstance(part, Mapping) and part.get("type") == "text"
            else part
            for part in content
        ]
    elif content is not None:  # a string, or a tool's structured result
        copy["content"] = _map_strings(content, fn)
    calls = message.get("tool_calls")
    if isinstance(calls, list):  # the arguments of calls are text the template writes out
        copy["tool_calls"] = [_map_call(call, fn) for call in calls]
    return copy


def _map_call(call: Any, fn: Callable[[str], str]) -> Any:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        return call
    arguments = function.get("arguments")
    if isinstance(arguments, str):  # OpenAI clients send JSON text; the template needs the object
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return call
    return {**call, "function": {**function, "arguments": _map_strings(arguments, fn)}}


def choose_marks(messages: Sequence[Mapping[str, Any]],
                 tools: Sequence[Mapping[str, Any]] = ()) -> tuple[str, str]:
    """Two characters that appear in no content of these messages or tool declarations."""
    used: set[str] = set()

    def collect(text: str) -> str:
        used.update(text)
        return text

    map_contents(messages, collect)
    map_tool_texts(tools, collect)
    free = [c for c in _MARK_CANDIDATES if c not in used]
    return free[0], free[1]


def map_contents(messages: Sequence[Mapping[str, Any]], fn: Callable[[str], str]) -> list[dict[str, Any]]:
    """Copies of the messages with `fn` applied to every piece of text people or tools wrote."""
    return [_map_message(message, fn) for message in messages]


def map_tool_texts(tools: Sequence[Mapping[str, Any]], fn: Callable[[str], str]) -> list[Any]:
    """Copies of tool declarations with `fn` applied to every description in them: text the
    tool's author wrote (an MCP server, an API client), which the template writes out."""

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: fn(v) if k == "description" and isinstance(v, str) else walk(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return [walk(tool) for tool in tools]


def wrap_contents(messages: Sequence[Mapping[str, Any]], marks: tuple[str, str]) -> list[dict[str, Any]]:
    """Copies of the messages with every piece of content text between the two marks."""
    return map_contents(messages, _wrap(marks))


def wrap_tool_texts(tools: Sequence[Mapping[str, Any]], marks: tuple[str, str]) -> list[Any]:
    """Copies of the declarations with every description between the two marks."""
    return map_tool_texts(tools, _wrap(marks))


def _wrap(marks: tuple[str, str]) -> Callable[[str], str]:
    start, end = marks
    return lambda text: f"{start}{text}{end}" if text else text


def split_marked(text: str, marks: tuple[str, str]) -> list[Segment]:
    """The rendered text as template and content segments (marks removed, empty ones dropped)."""
    start, end = marks
    segments: list[Segment] = []
    pos = 0
    while pos < len(text):
        i = text.find(start, pos)
        if i < 0:
            segments.append((text[pos:], False))
            break
        if i > pos:
            segments.append((text[pos:i], False))
        j = text.find(end, i + 1)
        if j < 0:  # a template that cut content in half: the rest is content, to be safe
            segments.append((text[i + 1 :].replace(end, ""), True))
            break
        segments.append((text[i + 1 : j], True))
        pos = j + 1
    return [(s, is_content) for s, is_content in segments if s]


def match_template(segments: list[Segment], plain: str) -> list[Segment]:
    """Segments whose joined text is exactly what the template writes without marks.

    A template that trims content (Gemma's does) trimmed the marks instead of the text inside
    them; trimming each content segment gives back the template's own output. If even that does
    not match, the segments are kept as they are: the prompt then differs from the template in
    whitespace only, and content still stays text.
    """
    if "".join(s for s, _ in segments) == plain:
        return segments
    trimmed = [(s.strip() if is_content else s, is_content) for s, is_content in segments]
    trimmed = [(s, c) for s, c in trimmed if s]
    if "".join(s for s, _ in trimmed) == plain:
        return trimmed
    return segments
