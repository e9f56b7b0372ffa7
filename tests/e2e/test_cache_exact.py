"""Cached equals fresh: every answer given with prompt-cache reuse is token for token what a fresh
context gives for the same prompt, at temperature 0.

Two engine hosts run side by side on the same model: one keeps its cache across the conversation
(prefix reuse, sliding-window checkpoints, media reuse), the other empties its cache before every
answer. Every step of a conversation goes to both, and the answers must be identical. The
conversation crosses the sliding window, carries an image and an audio clip, is stopped mid-answer,
edited and resent, and switched back to an earlier branch.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.core.engine.blocking import BlockingEngine
from app.core.engine.messages import LoadModel
from app.core.engine.records import Reply, SamplingParams
from tests.fixtures.gemma4 import SLIDING_WINDOW, synthetic_gemma4
from tests.fixtures.templates import GEMMA3_TEMPLATE

pytestmark = pytest.mark.slow

# Random weights: a grammar keeps the output to words, so every token is a real choice of the
# model's logits (greedy among the allowed ones) and the answers are long enough to compare.
WORDS = 'root ::= [a-z]+ (" " [a-z]+)*\n'
WORDY = ("Tell me everything about rivers, mountains, forests and the sea, the weather in spring "
         "and autumn, the birds that fly south, and the stars over the hills at night. ")


class Pair:
    """A cached engine and a fresh-context engine answering the same prompts."""

    def __init__(self, load: LoadModel, params: SamplingParams) -> None:
        self.params = params
        self.cached = BlockingEngine()
        self.fresh = BlockingEngine()
        for engine in (self.cached, self.fresh):
            engine.start()
            engine.load(load)
        self.cached_tokens: list[int] = []

    def close(self) -> None:
        self.cached.close()
        self.fresh.close()

    def ask(self, messages: list[dict[str, Any]], *, stop_after: int | None = None) -> Reply:
        """Answer on the cached engine (stopping it after `stop_after` deltas if asked), then
        check that a fresh context gives the same tokens for the same prompt."""
        deltas = [0]

        def maybe_stop(_kind: str, _text: str) -> None:
            deltas[0] += 1
            if stop_after is not None and deltas[0] == stop_after:
                for req_id in self.cached.connection.running():
                    self.cached.connection.stop(req_id)

        params = self.params
        cached = self.cached.generate(messages, False, params, on_delta=maybe_stop)
        assert cached.stats is not None
        self.cached_tokens.append(cached.stats.cached_tokens)
        if cached.stats.stopped:
            # The fresh run must write exactly as many tokens as the stopped one did.
            n = cached.stats.completion_tokens
            params = SamplingParams(**{**params.__dict__, "max_tokens": n})
        fresh = self.fresh.generate(messages, False, params, cache=False)
        assert fresh.stats is not None and fresh.stats.cached_tokens == 0
        assert (cached.answer, cached.thinking) == (fresh.answer, fresh.thinking), (
            f"cached answer differs from a fresh context's after {len(self.cached_tokens)} steps"
        )
        assert cached.stats.prompt_tokens == fresh.stats.prompt_tokens
        return cached


def _conversation(pair: Pair, first_user: Any, media_turns: list[Any]) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are brief."}]

    def turn(content: Any, **kw: Any) -> Reply:
        history.append({"role": "user", "content": content})
        reply = pair.ask(history, **kw)
        history.append({"role": "assistant", "content": reply.answer})
        return reply

    turn(first_user)
    for i in range(5):  # six text turns, well past the sliding window
        turn(f"{WORDY * 2}Turn {i}: and then?")
    for content in media_turns:
        turn(content)
    stopped = turn("Now a long story, please.", stop_after=2)
    assert stopped.stats is not None and stopped.stats.stopped
    turn("Go on.")
    # Edit and resend: the third user message, rewritten, with everything after it gone.
    branch_point = [i for i, m in enumerate(history) if m["role"] == "user"][2]
    old_branch = list(history)
    del history[branch_point:]
    turn("A different question about deserts.")
    # Back to the first branch, and on from there.
    history[:] = old_branch
    turn("Back on the old branch: one more thing.")
    prompt_len = pair.cached.count_tokens(history)
    assert prompt_len > SLIDING_WINDOW + 128
    # The cache really was used (this test would prove nothing if every answer were fresh).
    reused = pair.cached_tokens
    assert sum(1 for n in reused if n > 0) >= len(reused) - 2, reused
    assert sum(1 for n in reused if n > SLIDING_WINDOW) >= 2, reused


def test_synthetic_gemma4_cached_answers_equal_fresh_ones(media_files):
    g = synthetic_gemma4()
    load = LoadModel(str(g["model"]), str(g["mmproj"]), n_ctx=4096, n_threads=1)
    pair = Pair(load, SamplingParams(temperature=0.0, max_tokens=24, grammar=WORDS))
    try:
        _conversation(pair, "Hello <turn|> there.", [
            [{"type": "image", "path": str(media_files["image"])}, {"type": "text", "text": "What is it?"}],
            [{"type": "audio", "path": str(media_files["audio"])}, {"type": "text", "text": "And this?"}],
            "And what about the picture now?",
        ])
    finally:
        pair.close()


def test_270m_cached_answers_equal_fresh_ones(model_270m):
    load = LoadModel(str(model_270m), n_ctx=4096, n_threads=1, chat_template=GEMMA3_TEMPLATE)
    pair = Pair(load, SamplingParams(temperature=0.0, max_tokens=24))
    try:
        _conversation(pair, "Hello there.", [])
    finally:
        pair.close()
