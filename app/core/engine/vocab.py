"""Text and tokens of the loaded model's vocabulary; control tokens only where the template puts them."""

from __future__ import annotations

import ctypes
import re
from typing import Any

import llama_cpp as lc


class Vocabulary:
    """Tokenizing and detokenizing with the model's vocabulary (mixed into LlamaEngine)."""

    vocab: Any
    _piece_buf: Any
    # Each token's output bytes (None: it ends generation), filled as tokens are generated: a
    # dict lookup instead of two ctypes calls per token, which after a llama_decode has evicted
    # the interpreter from the CPU caches cost ~20 us together. Cleared when a model loads.
    _answer_pieces: dict[int, bytes | None]
    # The text of each generated token that is whole UTF-8 on its own (no end-of-turn marker),
    # filled by the token emitter (emitter.TokenEmitter). Cleared when a model loads.
    answer_texts: dict[int, str]

    def forget_pieces(self) -> None:
        """Empty both caches of generated tokens' output (a model loads: its tokens differ)."""
        self._answer_pieces = {}
        self.answer_texts = {}

    def answer_piece(self, token: int) -> bytes | None:
        """The bytes a generated token adds to the answer (markers spelled); None at end of generation."""
        pieces = self._answer_pieces
        if token not in pieces:
            end = lc.llama_vocab_is_eog(self.vocab, token)
            pieces[token] = None if end else self._piece_bytes(token, True)
        return pieces[token]

    def _piece_bytes(self, token: int, special: bool) -> bytes:
        buf = self._piece_buf  # reused: this runs once per generated token
        n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return bytes(buf.raw[:n])

    def _piece(self, token: int, special: bool) -> str:
        if token < 0:
            return ""
        return self._piece_bytes(token, special).decode("utf-8", errors="replace")

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        """Tokens of `text`; marker text becomes marker tokens only with parse_special.

        llama.cpp's parse_special=False keeps CONTROL spellings as text but still matches the
        USER_DEFINED markers (Gemma 4's `<|tool_call>`, `<|"|>`, `<|channel>`, …). So without
        parse_special, each such spelling found is tokenized in two pieces (its first character,
        then the rest), which keeps the same text and can never form the marker.
        """
        tokens = self._tokenize(text, add_special, parse_special)
        if parse_special:
            return tokens
        markers = {self.token_text(t) for t in tokens if self._user_marker(t)}
        if not markers:
            return tokens
        out = self._tokenize("", add_special, False)  # the BOS, when asked for
        pos = 0
        for spelling in _occurrences(text, markers):
            start, end = spelling
            out += self.tokenize(text[pos:start], add_special=False, parse_special=False)
            out += self._tokenize(text[start], False, False)
            out += self.tokenize(text[start + 1:end], add_special=False, parse_special=False)
            pos = end
        return out + self.tokenize(text[pos:], add_special=False, parse_special=False)

    def _user_marker(self, token: int) -> bool:
        """A user-defined token spelled like a marker (`<|…>`, `<…|>`). Gemma's vocabulary also
        has user-defined whitespace runs ("\n", "    "), which are ordinary text."""
        if not lc.llama_vocab_get_attr(self.vocab, token) & lc.LLAMA_TOKEN_ATTR_USER_DEFINED:
            return False
        text = self.token_text(token)
        return len(text) > 2 and text[0] == "<" and text[-1] == ">"

    def _tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        arr = (lc.llama_token * n_max)()
        n = lc.llama_tokenize(self.vocab, data, len(data), arr, n_max, add_special, parse_special)
        if n < 0:
            arr = (lc.llama_token * -n)()
            n = lc.llama_tokenize(self.vocab, data, len(data), arr, -n, add_special, parse_special)
        return list(arr[:n])

    def token_text(self, token: int) -> str:
        """A token's text, control tokens written out."""
        return self._piece(token, special=True)

    def is_control(self, token: int) -> bool:
        """A marker token, which only the template may write: control, or user-defined markers."""
        return (bool(lc.llama_vocab_get_attr(self.vocab, token) & lc.LLAMA_TOKEN_ATTR_CONTROL)
                or self._user_marker(token))

    def escape_control_text(self, text: str) -> str:
        """`text` with a word joiner inside every spelling of a control token, so it stays text."""
        for _ in range(8):  # each pass breaks every control token found; nested spellings need more
            found = {self.token_text(t) for t in self.tokenize(text, add_special=False)
                     if self.is_control(t)}
            found.discard("")
            if not found:
                break
            for spelling in sorted(found, key=len, reverse=True):
                text = text.replace(spelling, spelling[0] + "\u2060" + spelling[1:])
        return text


def _occurrences(text: str, spellings: set[str]) -> list[tuple[int, int]]:
    """(start, end) of each spelling in `text`, left to right, longest first where they overlap."""
    pattern = re.compile("|".join(re.escape(m) for m in sorted(spellings, key=len, reverse=True)))
    return [(m.start(), m.end()) for m in pattern.finditer(text)]
