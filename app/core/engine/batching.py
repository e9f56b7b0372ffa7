"""Continuous batching: up to N requests answered at once on one model, like llama-server's slots.

The context holds one llama.cpp sequence per slot, each in a KV stream of its own (n_ctx / N
cells; `LlamaEngine.load`). Every step decodes the next token of every answering slot in ONE
llama_decode; between two such steps go prompt batches of slots still reading their prompts, up
to n_batch tokens in all (as llama-server shares its batch), so requests that arrive together
start together, and a long prompt delays the others by one batch at a time, never by its whole
length.

Exactness, as for one sequence (see prompt_cache): with separate KV streams a token's logits do
not depend on which other sequences share its batch (measured bit for bit on the 270M, with 1, 2
and 4 sequences), and prompts go in batches of one sequence cut exactly as the single-sequence
engine cuts them. So a request answered in parallel mode gives the tokens the single-sequence
engine gives, at temperature 0, and each slot's prompt cache (prefix reuse, sliding-window
checkpoints, settling an answer while idle) stays exact. Images and audio are read into their
slot in one go (libmtmd evaluates a whole prompt), holding the other slots until done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import llama_cpp as lc

from app.core.engine.emitter import TokenEmitter
from app.core.engine.messages import Generate
from app.core.engine.prompt_cache import PromptCache
from app.core.engine.records import EngineError, GenerationStats, SamplingParams, Stopped
from app.core.engine.sampling import make_sampler

if TYPE_CHECKING:
    from app.core.engine.llama_engine import LlamaEngine
    from app.core.engine.session import EngineSession


class Slot(PromptCache):
    """One sequence of the shared context: its own prompt cache and, while busy, its answer."""

    def __init__(self, engine: LlamaEngine, seq: int) -> None:
        super().__init__(seq, alone=False)
        self.engine = engine
        self.ctx = engine.ctx
        self._batch = engine._batch
        self._n_batch = engine._n_batch
        self._n_swa = engine._n_swa
        self.stop_event = threading.Event()
        self.run: SlotRun | None = None
        self.unsettled: int | None = None  # prompt length of an answer not yet settled
        self.last_used = 0

    # What generate_with_media needs of an engine, answered by this slot's sequence.
    @property
    def media(self) -> Any:
        return self.engine.media

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        return self.engine.tokenize(text, add_special=add_special, parse_special=parse_special)

    def generate(self, n_prompt: int, params: SamplingParams, on_piece: Callable[[str], None],
                 prefill: Callable[[GenerationStats], None]) -> GenerationStats:
        """Start an answer whose prompt `prefill` reads at once (media prompts); the runner's
        steps then decode it with the others."""
        run = SlotRun(self, n_prompt, params, on_piece)
        try:
            prefill(run.stats)
        except Stopped:
            run.finish("stopped")
            return run.stats
        run.sample(-1)
        return run.stats

    def start_tokens(self, tokens: list[int], params: SamplingParams, on_piece: Callable[[str], None],
                     checkpoint_at: int | None) -> None:
        """Start an answer to a text prompt, read one batch per runner step."""
        if not tokens:
            raise EngineError("input", "The prompt is empty.")
        run = SlotRun(self, len(tokens), params, on_piece)

        def steps() -> Iterator[None]:
            n_cached = self.reuse_prefix(tokens)
            run.stats.cached_tokens = n_cached
            yield from self.prefill_steps(tokens[n_cached:], checkpoint_at)

        run.steps = steps()

    def common_prefix(self, tokens: list[int]) -> int:
        n = 0
        for a, b in zip(self._tokens, tokens, strict=False):
            if a != b:
                break
            n += 1
        return n


class SlotRun:
    """One answer in progress on a slot: its sampler, pending token and stats."""

    def __init__(self, slot: Slot, n_prompt: int, params: SamplingParams,
                 on_piece: Callable[[str], None]) -> None:
        engine = slot.engine
        self.slot = slot
        self.params = params
        self.stats = GenerationStats(prompt_tokens=n_prompt, n_ctx=engine.check_fits(n_prompt))
        self.emit = TokenEmitter(engine, on_piece, self.stats, time.perf_counter())
        self.sampler = make_sampler(engine.vocab, params)
        self.steps: Iterator[None] | None = None  # prompt batches still to decode
        self.token: int | None = None  # sampled, to be decoded in the next batch
        self.n = 0  # answer tokens taken
        self.done = False
        slot.run = self
        slot.unsettled = None

    def prefill_step(self) -> None:
        """Decode the prompt's next batch; after its last, sample the first answer token at once
        (the next decode, of other slots, would overwrite the prompt's logits)."""
        assert self.steps is not None
        try:
            next(self.steps)
        except Stopped:
            return self.finish("stopped")
        if len(self.slot._tokens) >= self.stats.prompt_tokens:
            self.steps = None
            self.sample(-1)

    def sample(self, idx: int) -> None:
        """Sample the next token from output `idx` of the last decode, or finish."""
        if self.n >= self.params.max_tokens:
            return self.finish("length")
        if self.slot.stop_event.is_set():
            return self.finish("stopped")
        token = lc.llama_sampler_sample(self.sampler, self.slot.ctx, idx)
        if not self.emit.take(token, self.n):
            return self.finish("stop")
        if len(self.slot._tokens) + 1 >= self.stats.n_ctx:
            return self.finish("context")
        self.token = token

    def decoded(self, idx: int) -> None:
        assert self.token is not None
        self.slot._tokens.append(self.token)
        self.token = None
        self.n += 1
        self.sample(idx)

    def finish(self, reason: str) -> None:
        self.token = None
        self.steps = None
        self.stats.finish_reason = reason
        self.stats.stopped = reason == "stopped"
        if not self.done:
            self.emit.finish(self.n)
            lc.llama_sampler_free(self.sampler)
        self.done = True
        self.slot.engine.close_stats(self.stats, len(self.slot._tokens))


class BatchRunner:
    """Admits requests into free slots and runs them together, one batch per `step`."""

    def __init__(self, engine: LlamaEngine, session: EngineSession) -> None:
        self.engine = engine
        self.session = session
        self.slots: list[Slot] = engine.slots
        self._uses = 0
        self._order: list[Slot] = []  # busy slots in the order their requests were admitted

    def free(self) -> bool:
        return any(s.run is None for s in self.slots)

    def busy(self) -> bool:
        return any(s.run is not None for s in self.slots)

    def start(self, request: Generate, on_piece: Callable[[str], None], stop: threading.Event) -> Slot:
        """Put `request` on the free slot whose cache shares most of its prompt, and return that
        slot (EngineError if it cannot start: a bad prompt, too long for a slot's share of the
        context)."""
        session = self.session
        media = session.has_media(request)
        tokens, checkpoint = ([], None) if media else session.request_tokens(request)
        free = [s for s in self.slots if s.run is None]
        slot = max(free, key=lambda s: (s.common_prefix(tokens), -s.last_used))
        self._uses += 1
        slot.last_used = self._uses
        if slot.unsettled is not None:  # another request is here now: no time to settle
            slot.settle(slot.unsettled, decode=False)
            slot.unsettled = None
        slot.stop_event = stop
        if not request.cache:
            slot.forget_cache()
        try:
            if media:
                from app.core.engine.media_prompt import generate_with_media

                generate_with_media(_SlotSession(session, slot), request.messages,
                                    request.enable_thinking, request.params, on_piece)
            else:
                slot.start_tokens(tokens, request.params, on_piece, checkpoint)
        except BaseException:
            if slot.run is not None and not slot.run.done:
                slot.run.finish("stopped")
            slot.run = None
            slot.forget_cache()
            raise
        self._order.append(slot)
        return slot

    def step(self) -> list[tuple[Slot, GenerationStats | EngineError]]:
        """Prompt batches of slots reading their prompts (in arrival order, up to n_batch tokens
        in all, at least one batch), then one token for every answering slot; returns the
        answers that ended, with their stats or their error."""
        ended: list[tuple[Slot, GenerationStats | EngineError]] = []
        for slot in self._order:  # stopped while waiting for its prompt's turn: end it now
            if slot.run is not None and slot.run.steps is not None and slot.stop_event.is_set():
                slot.run.finish("stopped")
        budget = self.engine._n_batch  # prompt tokens per step, as llama-server's batch
        for slot in self._order:
            while budget > 0 and slot.run is not None and slot.run.steps is not None:
                before = len(slot._tokens)
                try:
                    slot.run.prefill_step()
                except EngineError as exc:
                    ended.append((slot, exc))
                    break
                budget -= max(1, len(slot._tokens) - before)
        answering = [s for s in self._order if s.run is not None and s.run.token is not None]
        if answering:
            error = self._decode(answering)
            if error is not None:
                ended += [(s, error) for s in answering]
        for slot in list(self._order):
            run = slot.run
            failed = [e for s, e in ended if s is slot]
            if run is None or not (run.done or failed):
                continue
            if failed:
                if not run.done:
                    run.finish("stopped")
                slot.forget_cache()
            else:
                ended.append((slot, run.stats))
                slot.unsettled = run.stats.prompt_tokens
            slot.run = None
            self._order.remove(slot)
        return ended

    def _decode(self, slots: list[Slot]) -> EngineError | None:
        batch = self.engine._batch
        batch.n_tokens = len(slots)
        for i, slot in enumerate(slots):
            assert slot.run is not None
            batch.token[i] = slot.run.token
            batch.pos[i] = len(slot._tokens)
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = slot._seq
            batch.logits[i] = True
        rc = lc.llama_decode(self.engine.ctx, batch)
        if rc != 0:
            return EngineError("internal", f"llama.cpp stopped decoding (code {rc}).")
        for i, slot in enumerate(slots):
            assert slot.run is not None
            slot.run.decoded(i)
        return None

    def settle_one(self) -> bool:
        """While nothing runs or waits: settle one slot's last answer (see PromptCache.settle);
        False when none is left to settle."""
        for slot in self.slots:
            if slot.run is None and slot.unsettled is not None:
                n_prompt, slot.unsettled = slot.unsettled, None
                slot.settle(n_prompt)
                return True
        return False


class _SlotSession:
    """What generate_with_media needs of a session, with a slot as its engine."""

    def __init__(self, session: EngineSession, slot: Slot) -> None:
        self.engine = slot
        self.render = session.render
        self.escape_content = session.escape_content
