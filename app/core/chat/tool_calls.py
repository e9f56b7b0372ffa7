"""Parse Gemma 4 native tool calls: ``<|tool_call>call:NAME{key:value,…}<tool_call|>``.

Value forms, as the official chat template writes them (``format_argument``): strings
wrapped in ``<|"|>…<|"|>`` (raw inside: quotes, braces, commas, newlines), bare numbers,
``true``/``false``, null as ``None`` (or ``null``), ``[…]`` arrays and ``{…}`` objects whose
keys are bare (or ``<|"|>``-wrapped, as in declarations). The parser is strict: anything else
raises ``ToolCallError`` naming the offset in the text it was given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

CALL_OPEN: Final = "<|tool_call>"
CALL_CLOSE: Final = "<tool_call|>"
STRING_DELIM: Final = '<|"|>'

_NAME = re.compile(r"[A-Za-z0-9_][\w.\-]*")
_KEY = re.compile(r"[A-Za-z_$][\w.\-$]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORDS: Final[dict[str, Any]] = {"true": True, "false": False, "None": None, "null": None}
_WORD = re.compile(r"[A-Za-z_]+")


class ToolCallError(ValueError):
    """A malformed tool call; ``position`` is the offset in the parsed text."""

    def __init__(self, message: str, position: int, text: str) -> None:
        snippet = text[max(0, position - 20) : position + 20].replace("\n", "\\n")
        super().__init__(f"{message} at position {position} (near {snippet!r})")
        self.position = position


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_openai(self, call_id: str) -> dict[str, Any]:
        """The OpenAI-shaped entry of an assistant message's ``tool_calls`` list."""
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class _Parser:
    """Recursive-descent reader over one text; ``pos`` advances as values are consumed."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def fail(self, message: str) -> ToolCallError:
        return ToolCallError(message, self.pos, self.text)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, token: str) -> None:
        self.skip_space()
        if not self.text.startswith(token, self.pos):
            found = self.text[self.pos : self.pos + len(token)] or "end of text"
            raise self.fail(f"expected {token!r}, found {found!r}")
        self.pos += len(token)

    def peek(self, token: str) -> bool:
        self.skip_space()
        return self.text.startswith(token, self.pos)

    def call(self) -> ToolCall:
        self.expect("call:")
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a function name")
        self.pos = match.end()
        return ToolCall(match.group(), self.object())

    def object(self) -> dict[str, Any]:
        self.expect("{")
        result: dict[str, Any] = {}
        if self.peek("}"):
            self.pos += 1
            return result
        while True:
            key_at = self.pos
            key = self.key()
            if key in result:
                self.pos = key_at
                raise self.fail(f"duplicate key {key!r}")
            self.expect(":")
            result[key] = self.value()
            if self.peek(","):
                self.pos += 1
                continue
            self.expect("}")
            return result

    def key(self) -> str:
        self.skip_space()
        if self.text.startswith(STRING_DELIM, self.pos):
            return self.string()
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a key")
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        start = self.pos + len(STRING_DELIM)
        end = self.text.find(STRING_DELIM, start)
        if end < 0:
            raise self.fail("unterminated string")
        self.pos = end + len(STRING_DELIM)
        return self.text[start:end]

    def array(self) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        if self.peek("]"):
            self.pos += 1
            return items
        while True:
            items.append(self.value())
            if self.peek(","):
                self.pos += 1
                continue
            self.expect("]")
            return items

    def value(self) -> Any:
        self.skip_space()
        text, pos = self.text, self.pos
        if text.startswith(STRING_DELIM, pos):
            return self.string()
        if text.startswith("{", pos):
            return self.object()
        if text.startswith("[", pos):
            return self.array()
        number = _NUMBER.match(text, pos)
        if number is not None:
            self.pos = number.end()
            literal = number.group()
            if any(c in literal for c in ".eE"):
                return float(literal)
            return int(literal)
        word = _WORD.match(text, pos)
        if word is not None and word.group() in _WORDS:
            self.pos = word.end()
            return _WORDS[word.group()]
        raise self.fail("expected a value (string, number, true/false, None, array or object)")


def parse_call_body(text: str, start: int = 0) -> tuple[ToolCall, int]:
    """Parse ``call:NAME{…}`` at ``start``; return the call and the offset just after it."""
    parser = _Parser(text, start)
    call = parser.call()
    return call, parser.pos


def parse_tool_calls(text: str) -> list[ToolCall]:
    """Every ``<|tool_call>…<tool_call|>`` block in text, in order; strict on malformed ones.

    A text without markers that starts with ``call:`` is read as one bare call body.
    """
    calls: list[ToolCall] = []
    if CALL_OPEN not in text:
        if text.lstrip().startswith("call:"):
            call, end = parse_call_body(text)
            parser = _Parser(text, end)
            parser.skip_space()
            if parser.pos != len(text):
                raise parser.fail("unexpected text after the call")
            calls.append(call)
        return calls
    pos = 0
    while (start := text.find(CALL_OPEN, pos)) >= 0:
        call, end = parse_call_body(text, start + len(CALL_OPEN))
        parser = _Parser(text, end)
        parser.expect(CALL_CLOSE)
        calls.append(call)
        pos = parser.pos
    return calls


def decode_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI sends ``arguments`` as a JSON string; the template needs the object itself."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        decoded = json.loads(arguments)
        if not isinstance(decoded, dict):
            raise ValueError("tool call arguments must be a JSON object")
        return decoded
    return dict(arguments)


def format_value(value: Any) -> str:
    """A value written the way the template's ``format_argument`` (bare keys) writes it."""
    if isinstance(value, str):
        return STRING_DELIM + value + STRING_DELIM
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]).lower())
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def format_call(call: ToolCall) -> str:
    """The call as the model writes it (for display and for prompts built without a template)."""
    return f"{CALL_OPEN}call:{call.name}{format_value(call.arguments)}{CALL_CLOSE}"
