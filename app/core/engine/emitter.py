"""One answer's sampled tokens turned into text pieces, with its timing figures.

Used by the single-sequence loop (llama_engine) and by each slot of continuous batching
(batching): both stream a token at a time and stop at the end of generation or of turn.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable

from app.core.engine.records import GenerationStats
from app.core.engine.vocab import Vocabulary

END_OF_TURN_TEXTS = ("<turn|>", "<end_of_turn>")


class TokenEmitter:
    """One answer's sampled tokens -> text pieces, with its time-to-first-token and decode rate."""

    def __init__(self, engine: Vocabulary, on_piece: Callable[[str], None], stats: GenerationStats,
                 t0: float) -> None:
        self._engine = engine
        self._on_piece = on_piece
        self._stats = stats
        self._t0 = t0
        self._t_first = 0.0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._texts = engine.answer_texts
        self._held = False  # the decoder holds the first bytes of a character

    def take(self, token: int, n: int) -> bool:
        """Answer token number n; False when it ends the answer (end of generation or of turn)."""
        # Most tokens are whole UTF-8 on their own: their text is one dict lookup. The
        # incremental decoder (Python code, ~20 us a token after a llama_decode has evicted the
        # interpreter from the CPU caches) runs for the others and while it holds bytes.
        text = self._texts.get(token)
        if text is None or self._held:
            text = self._decode(token)
            if text is None:
                return False
        if text:
            self._on_piece(text)
        if n == 0:
            self._t_first = time.perf_counter()
            self._stats.ttft_ms = (self._t_first - self._t0) * 1000.0
        self._stats.completion_tokens = n + 1
        return True

    def finish(self, n_decoded: int) -> None:
        """The answer ended with n_decoded of its tokens decoded, each a step since the first token
        was sampled: its decode rate, worked out once here rather than at every token."""
        elapsed = time.perf_counter() - self._t_first
        if n_decoded > 0 and elapsed > 0:
            self._stats.decode_tok_s = n_decoded / elapsed

    def _decode(self, token: int) -> str | None:
        """The token's text through the incremental decoder; None when it ends the answer. A
        token decoded whole from a clean state is remembered: that is the decoder's own output."""
        piece = self._engine.answer_piece(token)
        if piece is None:
            return None
        was_held = self._held
        text = self._decoder.decode(piece)
        if text in END_OF_TURN_TEXTS:
            return None
        self._held = bool(self._decoder.getstate()[0])
        if text and not was_held and not self._held:
            self._texts[token] = text
        return text
