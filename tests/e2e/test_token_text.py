"""Generated tokens become text exactly as an incremental UTF-8 decoder gives it.

The token emitter remembers the text of tokens that are whole UTF-8 on their own and decodes the
rest (byte-fallback tokens, and every token while a character is incomplete) incrementally; with
the real 270M vocabulary its output must equal a plain incremental decode of the same bytes,
whether its cache is empty or already filled by an earlier answer.
"""

from __future__ import annotations

import codecs
import random

import llama_cpp as lc
import pytest

from app.core.engine.emitter import END_OF_TURN_TEXTS, TokenEmitter
from app.core.engine.llama_engine import LlamaEngine
from app.core.engine.records import GenerationStats
from tests.fixtures.models import gemma3_270m_path

pytestmark = pytest.mark.slow

TEXT = "Grüße 😀 日本語 𓀀𓁐 ꙮ, and plain words."


@pytest.fixture(scope="module")
def engine():
    e = LlamaEngine()
    e.load(str(gemma3_270m_path()), n_ctx=256, n_gpu_layers=0, n_threads=1)
    yield e
    e.close()


def _lone_byte(engine: LlamaEngine, token: int) -> bool:
    """A byte-fallback token: one byte of a longer UTF-8 character."""
    piece = engine.answer_piece(token) or b""
    return len(piece) == 1 and piece[0] >= 0x80


def _emit(engine: LlamaEngine, tokens: list[int]) -> tuple[list[str], bool]:
    """The pieces one answer of `tokens` gives, and whether it ran to their end."""
    pieces: list[str] = []
    emit = TokenEmitter(engine, pieces.append, GenerationStats(), 0.0)
    whole = all(emit.take(token, n) for n, token in enumerate(tokens))
    return pieces, whole


def _reference(engine: LlamaEngine, tokens: list[int]) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return "".join(decoder.decode(engine.answer_piece(t) or b"") for t in tokens)


def test_text_with_byte_fallback_tokens_is_exact_with_an_empty_and_a_filled_cache(engine):
    tokens = engine.tokenize(TEXT, add_special=False, parse_special=False)
    assert any(_lone_byte(engine, t) for t in tokens)  # the text needs the incremental decoder
    engine.answer_texts.clear()
    first, whole = _emit(engine, tokens)
    assert whole and "".join(first) == TEXT
    assert engine.answer_texts  # whole tokens were remembered ...
    assert not any(_lone_byte(engine, t) for t in engine.answer_texts)  # ... and no lone byte
    again, whole = _emit(engine, tokens)
    assert whole and again == first


def test_random_tokens_match_an_incremental_decode(engine):
    rng = random.Random(7)
    byte_tokens = [t for t in range(1000) if _lone_byte(engine, t)]
    assert len(byte_tokens) == 128
    n_vocab = lc.llama_vocab_n_tokens(engine.vocab)
    engine.answer_texts.clear()
    for _ in range(40):
        tokens = [rng.choice(byte_tokens) if rng.random() < 0.3 else rng.randrange(n_vocab)
                  for _ in range(60)]
        tokens = [t for t in tokens if engine.answer_piece(t) is not None
                  and (engine.answer_piece(t) or b"").decode("utf-8", "replace") not in END_OF_TURN_TEXTS]
        pieces, whole = _emit(engine, tokens)
        assert whole
        assert "".join(pieces) == _reference(engine, tokens)
