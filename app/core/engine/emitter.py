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

    def take(self, token: int, n: int) -> bool:
        """Answer token number n; False when it ends the answer (end of generation or of turn)."""
        piece = self._engine.answer_piece(token)
        if piece is None:
            return False
        text = self._decoder.decode(piece)
        if text in END_OF_TURN_TEXTS:
            return False
        if text:
            self._on_piece(text)
        t_last = time.perf_counter()
        stats = self._stats
        if n == 0:
            self._t_first = t_last
            stats.ttft_ms = (t_last - self._t0) * 1000.0
        stats.completion_tokens = n + 1
        if n > 0:
            stats.decode_tok_s = n / (t_last - self._t_first) if t_last > self._t_first else 0.0
        return True
