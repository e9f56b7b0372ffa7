"""Text and tokens of the loaded model's vocabulary; control tokens only where the template puts them."""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp as lc


class Vocabulary:
    """Tokenizing and detokenizing with the model's vocabulary (mixed into LlamaEngine)."""

    vocab: Any
    _piece_buf: Any

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
        """Tokens of `text`; control-token text becomes control tokens only with parse_special."""
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
        return bool(lc.llama_vocab_get_attr(self.vocab, token) & lc.LLAMA_TOKEN_ATTR_CONTROL)

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
