"""How the engine host batches an answer's text into messages (host._PieceSender)."""

from __future__ import annotations

import pytest

from app.core.engine import host
from app.core.engine.messages import Piece


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _messages_for(monkeypatch, token_s: float, n: int) -> list[tuple[float, str]]:
    """(time sent, text) of each message for n one-character tokens `token_s` apart."""
    clock = _Clock()
    monkeypatch.setattr(host.time, "perf_counter", clock)
    sent: list[tuple[float, str]] = []

    class Out:
        def send(self, event: Piece) -> None:
            sent.append((clock.now, event.text))

    sender = host._PieceSender(Out(), 7)  # type: ignore[arg-type]
    for i in range(n):
        clock.now += token_s
        sender(chr(ord("a") + i % 26))
    sender.flush()  # the answer's end
    return sent


@pytest.mark.parametrize("tok_s", [5, 35, 150, 1000])
def test_text_is_whole_in_order_and_the_first_piece_goes_at_once(monkeypatch, tok_s):
    sent = _messages_for(monkeypatch, 1 / tok_s, 200)
    assert "".join(text for _, text in sent) == "".join(chr(ord("a") + i % 26) for i in range(200))
    assert sent[0][1] == "a"


@pytest.mark.parametrize("tok_s, per_message", [(5, 1), (35, 5), (45, 5), (150, 8), (1000, 50)])
def test_tokens_per_message_follow_the_decode_speed(monkeypatch, tok_s, per_message):
    # A CPU answer (35-45 tok/s) goes 5 tokens a message, so the receiving process wakes 7-9 times
    # a second, not at every token; a fast one every 50 ms; a slow one a token at a time.
    sent = _messages_for(monkeypatch, 1 / tok_s, 400)
    middle = [len(text) for _, text in sent[1:-1]]
    assert max(middle) == min(middle) == per_message


@pytest.mark.parametrize("tok_s", [5, 10, 35, 150])
def test_text_is_never_held_longer_than_the_hold_limit_plus_one_token(monkeypatch, tok_s):
    sent = _messages_for(monkeypatch, 1 / tok_s, 200)
    gaps = [b - a for (a, _), (b, _) in zip(sent, sent[1:-1], strict=False)]
    assert max(gaps) <= max(host.PIECE_MAX_HOLD_S, 1 / tok_s) + 1 / tok_s + 1e-9
