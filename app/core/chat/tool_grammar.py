"""A GBNF grammar that makes the model's answer Gemma 4 tool calls (``tool_choice`` required/named).

The answer can then only be ``<|tool_call>call:NAME{…}<tool_call|>`` blocks (one, or one or more),
optionally after a thought when thinking is on. NAME is one of the offered functions (or the named
one). The arguments follow each function's JSON schema as far as the call format can say it:

- objects list their declared properties with bare keys, in the template's own order (sorted,
  case-insensitive, as ``dictsort`` writes calls in the prompt), required ones always, optional
  ones maybe; no undeclared keys;
- strings are ``<|"|>…<|"|>`` (``enum``/``const`` become those literals; ``maxLength`` caps them);
- ``integer``/``number``/``boolean``/``null``, arrays of ``items`` (``minItems``/``maxItems``),
  ``anyOf``/``oneOf`` and type lists become alternatives, ``nullable`` adds null;
- anything the schema does not pin (no type, ``$ref``, a free object) is any Gemma value.

llama.cpp matches the markers (special tokens) by their text, so they are plain literals here.
A string may not contain ``<|`` (so it cannot spell a marker or its own delimiter) and a
thought may not contain ``<|`` or ``<c``; that is all the grammar takes from the model's freedom.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from app.core.chat.thinking import CHANNEL_CLOSE, CHANNEL_OPEN, THOUGHT_NAME
from app.core.chat.tool_calls import CALL_CLOSE, CALL_OPEN, STRING_DELIM

_MAX_DIGITS = 15

def _lit(text: str) -> str:
    """A GBNF string literal (JSON escapes are GBNF escapes)."""
    return json.dumps(text, ensure_ascii=False)


_DELIM = _lit(STRING_DELIM)
_BASE = {
    "gstr-char": '[^<] | "<"+ [^<|]',
    "gstring": f"{_DELIM} gstr-char* {_DELIM}",
    "gint": f'"-"? [0-9]{{1,{_MAX_DIGITS}}}',
    "gnumber": f'"-"? [0-9]{{1,{_MAX_DIGITS}}} ("." [0-9]{{1,{_MAX_DIGITS}}})? '
               '([eE] [-+]? [0-9]{1,3})?',
    "gbool": '"true" | "false"',
    "gnull": '"null" | "None"',
    "gkey": "[A-Za-z_] [A-Za-z0-9_]*",
    "gvalue": "gstring | gnumber | gbool | gnull | garray | gobject",
    "garray": '"[" (gvalue ("," gvalue)*)? "]"',
    "gobject": '"{" (gkey ":" gvalue ("," gkey ":" gvalue)*)? "}"',
    "thought-char": '[^<] | "<"+ [^<|c]',
    "thought": f"{_lit(CHANNEL_OPEN + THOUGHT_NAME + chr(10))} thought-char* {_lit(CHANNEL_CLOSE)}",
}

_SAFE = re.compile(r"[^A-Za-z0-9-]+")


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self.used: set[str] = set()  # shared rules (of _BASE) the grammar refers to

    def add(self, name: str, body: str) -> str:
        base = _SAFE.sub("-", name).strip("-").lower() or "r"
        candidate, n = base, 1
        while candidate in self.rules or candidate in _BASE:
            n += 1
            candidate = f"{base}{n}"
        self.rules[candidate] = body
        return candidate

    def base(self, name: str) -> str:
        self.used.add(name)
        if name in ("gvalue", "garray", "gobject"):
            self.used.update({"gvalue", "garray", "gobject", "gstring", "gstr-char", "gnumber",
                              "gbool", "gnull", "gkey"})
        elif name == "gstring":
            self.used.add("gstr-char")
        elif name == "thought":
            self.used.add("thought-char")
        return name

    def value(self, schema: Any, name: str) -> str:
        """A rule expression for one value of this schema."""
        if not isinstance(schema, Mapping):
            return self.base("gvalue")
        if "const" in schema:
            return self.literal_value(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return "(" + " | ".join(self.literal_value(v) for v in schema["enum"]) + ")"
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                alts = [self.value(o, f"{name}-{i}") for i, o in enumerate(options)]
                return self.nullable(schema, "(" + " | ".join(alts) + ")")
        kind = schema.get("type")
        if isinstance(kind, list) and kind:
            alts = [self.value({**schema, "type": k}, f"{name}-{k}") for k in kind]
            return "(" + " | ".join(alts) + ")"
        if not isinstance(kind, str):
            return self.base("gvalue")
        expr = self.typed(schema, kind.lower(), name)
        return self.nullable(schema, expr)

    def nullable(self, schema: Mapping[str, Any], expr: str) -> str:
        if schema.get("nullable") is True:
            return f"({expr} | {self.base('gnull')})"
        return expr

    def typed(self, schema: Mapping[str, Any], kind: str, name: str) -> str:
        if kind == "string":
            limit = schema.get("maxLength")
            if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
                self.base("gstring")
                return f"{_DELIM} gstr-char{{0,{limit}}} {_DELIM}"
            return self.base("gstring")
        if kind == "integer":
            return self.base("gint")
        if kind == "number":
            return self.base("gnumber")
        if kind == "boolean":
            return self.base("gbool")
        if kind == "null":
            return self.base("gnull")
        if kind == "array":
            return self.array(schema, name)
        if kind == "object":
            return self.object(schema, name)
        return self.base("gvalue")

    def array(self, schema: Mapping[str, Any], name: str) -> str:
        item = self.value(schema.get("items"), f"{name}-item")
        item_rule = self.add(f"{name}-item", item)
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        low = low if isinstance(low, int) and not isinstance(low, bool) and low >= 0 else 0
        if isinstance(high, int) and not isinstance(high, bool) and high >= max(low, 1):
            rest = f'("," {item_rule}){{{max(low - 1, 0)},{high - 1}}}'
        elif isinstance(high, int) and high == 0:
            return '"[" "]"'
        else:
            rest = f'("," {item_rule}){{{max(low - 1, 0)},}}'
        body = f"{item_rule} {rest}"
        if low == 0:
            body = f"({body})?"
        return self.add(name, f'"[" {body} "]"')

    def object(self, schema: Mapping[str, Any], name: str) -> str:
        props = schema.get("properties")
        if not isinstance(props, Mapping) or not props:
            return self.base("gobject")
        required = schema.get("required")
        required_set = {str(r) for r in required} if isinstance(required, list) else set()
        keys = sorted(props, key=lambda k: str(k).lower())  # the template's dictsort order
        items = [(str(k), self.add(f"{name}-{k}-kv", f"{_lit(str(k))} \":\" "
                                   + self.value(props[k], f"{name}-{k}")))
                 for k in keys]
        return self.add(name, '"{" ' + self.sequence(items, required_set, name) + ' "}"')

    def sequence(self, items: Sequence[tuple[str, str]], required: set[str], name: str) -> str:
        """Comma-separated items in order: required ones always, optional ones maybe."""
        tails: dict[tuple[int, bool], str] = {}

        def tail(i: int, first: bool) -> str:
            if i == len(items):
                return ""
            if (i, first) in tails:
                return tails[(i, first)]
            key, kv = items[i]
            sep = "" if first else '"," '
            after = tail(i + 1, False)
            taken = f"{sep}{kv} {after}".strip()
            if key in required:
                expr = taken
            else:
                skipped = tail(i + 1, first)
                expr = f"({taken} | {skipped})" if skipped else f"({taken})?"
            rule = self.add(f"{name}-seq{i}{'f' if first else ''}", expr)
            tails[(i, first)] = rule
            return rule

        return tail(0, True)

    def literal_value(self, value: Any) -> str:
        """One exact value written as the template writes it."""
        from app.core.chat.tool_calls import format_value

        if value is None:
            return self.base("gnull")
        return _lit(format_value(value))


def _function_name(tool: Mapping[str, Any]) -> str:
    return str(tool["function"]["name"])


def tool_call_grammar(
    tools: Sequence[Mapping[str, Any]],
    *,
    only: str | None = None,
    parallel: bool = True,
    allow_thought: bool = False,
) -> str:
    """GBNF whose only sentences are tool calls to ``tools`` (OpenAI function declarations).

    ``only`` names the one function that may be called; ``parallel`` allows more than one call;
    ``allow_thought`` lets a thought (thinking on) come first.
    """
    b = _Builder()
    chosen = [t for t in tools if only is None or _function_name(t) == only]
    if not chosen:
        raise ValueError(f"no offered function is named {only!r}")
    calls = []
    for tool in chosen:
        fname = _function_name(tool)
        params = tool["function"].get("parameters")
        if isinstance(params, Mapping) and params.get("properties"):
            args = b.object(params, f"{fname}-args")
        elif isinstance(params, Mapping) and params.get("type") not in (None, "object"):
            args = b.base("gobject")
        else:
            args = '"{" "}"'
        calls.append(b.add(f"call-{fname}", f"{_lit(CALL_OPEN + 'call:' + fname)} {args} "
                                            f"{_lit(CALL_CLOSE)}"))
    call = b.add("call", " | ".join(calls))
    head = f"{b.base('thought')}? " if allow_thought else ""
    body = f"{call}+" if parallel else call
    lines = [f"root ::= {head}{body}"]
    lines += [f"{n} ::= {r}" for n, r in b.rules.items()]
    lines += [f"{n} ::= {_BASE[n]}" for n in _BASE if n in b.used]
    return "\n".join(lines) + "\n"
