"""The prompt cache: reuse the KV cache of the prompt prefix shared with the last turn, exactly.

Exact means: at temperature 0 an answer given with reuse is token for token what a fresh context
gives. llama.cpp's CPU kernels are not batch-invariant: a token's keys and values come out a
little different when it is decoded alone, or in a batch of a few, than inside a long batch
(measured on the 270M: up to 1.2 in the logits). So the cache keeps only what a fresh context
would have computed the same way:

- every prompt batch holds at least MIN_CHUNK tokens (from that size on, results do not depend
  on how the prompt is cut, given the engine's exact-numerics settings; see `LlamaEngine.load`);
- generated tokens were decoded one by one, so after an answer they are decoded again as one
  batch (`settle`, run after the answer is sent, while the user reads it);
- sliding-window checkpoints are taken at least MIN_CHUNK tokens before the end of a prompt.
`tests/e2e/test_cache_exact.py` proves it over long conversations with media, stops and branches.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import llama_cpp as lc

from app.core.engine.records import Checkpoint, EngineError, Stopped

# Smallest prompt batch: measured exact from 8 tokens on (the 270M); 32 leaves a margin.
MIN_CHUNK = 32
MAX_CHECKPOINTS = 8  # a few turns back is enough; each holds the sliding window only


def chunk_sizes(n: int, n_batch: int) -> list[int]:
    """Batch sizes for n tokens: at most n_batch each, none under MIN_CHUNK where n allows."""
    if n <= 0:
        return []
    sizes = [n_batch] * (n // n_batch)
    if n % n_batch:
        sizes.append(n % n_batch)
    if len(sizes) > 1 and sizes[-1] < MIN_CHUNK:
        moved = MIN_CHUNK - sizes[-1]
        sizes[-2] -= moved
        sizes[-1] += moved
    return sizes


class PromptCache:
    """KV bookkeeping of one sequence: which tokens the cache holds, and sliding-window checkpoints.

    The engine is the cache of sequence 0 when it runs one sequence; with several (continuous
    batching, `app.core.engine.batching`) every slot is a PromptCache of its own sequence.
    """

    ctx: Any
    stop_event: threading.Event
    _batch: Any
    _n_batch: int
    _n_swa: int

    def __init__(self, seq: int = 0, *, alone: bool = True) -> None:
        self._seq = seq
        self._alone = alone  # the context's only sequence: emptying the cache may clear it all
        self._tokens: list[int] = []  # what the KV cache holds for this sequence
        self._checkpoints: list[Checkpoint] = []

    def _memory(self) -> Any:
        return lc.llama_get_memory(self.ctx)

    def forget_cache(self) -> None:
        """Empty the KV cache: the next prompt is processed as in a fresh context."""
        if self.ctx:
            self._clear()
        self._tokens = []
        self._checkpoints = []

    def _clear(self) -> None:
        if self._alone:
            lc.llama_memory_clear(self._memory(), True)
        else:
            lc.llama_memory_seq_rm(self._memory(), self._seq, -1, -1)

    def reuse_prefix(self, tokens: list[int], snap: Callable[[int], int] | None = None) -> int:
        """Keep the cached prefix shared with `tokens`; returns how many tokens need no decoding.

        `snap` moves a cut point back to where decoding may resume (not inside an image).
        """
        n_common = 0
        for a, b in zip(self._tokens, tokens, strict=False):
            if a != b:
                break
            n_common += 1
        # At least one full batch is decoded: fresh logits, computed as a fresh context would.
        n_common = max(0, min(n_common, len(tokens) - MIN_CHUNK))
        if snap is not None:
            n_common = snap(n_common)
        mem = self._memory()
        if n_common > 0 and self._n_swa > 0:
            pos_min = lc.llama_memory_seq_pos_min(mem, self._seq)
            if pos_min > max(0, n_common - self._n_swa):
                # The sliding-window layers no longer hold what precedes n_common: restore a checkpoint.
                n_common = self._restore_checkpoint(n_common)
                if snap is not None:
                    n_common = min(n_common, snap(n_common))
        if n_common <= 0 or not lc.llama_memory_seq_rm(mem, self._seq, n_common, -1):
            self._clear()
            self._checkpoints = []
            n_common = 0
        self._tokens = self._tokens[:n_common]
        self._checkpoints = [c for c in self._checkpoints if c.n_tokens <= n_common]
        return n_common

    def _restore_checkpoint(self, n_common: int) -> int:
        for cp in reversed(self._checkpoints):
            if cp.n_tokens <= n_common and (cp.pos_min < max(0, cp.n_tokens - self._n_swa) or cp.pos_min <= 0):
                buf = (ctypes.c_uint8 * len(cp.data)).from_buffer_copy(cp.data)
                flags = lc.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
                if lc.llama_state_seq_set_data_ext(self.ctx, buf, len(cp.data), self._seq, flags) == 0:
                    return 0
                return cp.n_tokens
        return 0

    def save_checkpoint(self) -> None:
        if self._n_swa <= 0 or not self._tokens:
            return
        flags = lc.LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY
        size = lc.llama_state_seq_get_size_ext(self.ctx, self._seq, flags)
        buf = (ctypes.c_uint8 * size)()
        written = lc.llama_state_seq_get_data_ext(self.ctx, buf, size, self._seq, flags)
        pos_min = lc.llama_memory_seq_pos_min(self._memory(), self._seq)
        self._checkpoints.append(Checkpoint(len(self._tokens), pos_min, bytes(buf)[:written]))
        del self._checkpoints[:-MAX_CHECKPOINTS]

    def prefill_with_checkpoint(self, tokens: list[int], checkpoint_at: int | None) -> None:
        """Decode `tokens` at the end of the cache, saving a checkpoint near `checkpoint_at`.

        The checkpoint goes MIN_CHUNK tokens early, so the batch after it is a full one.
        """
        with self._abortable():
            for _ in self.prefill_steps(tokens, checkpoint_at):
                pass

    def prefill_steps(self, tokens: list[int], checkpoint_at: int | None) -> Iterator[None]:
        """`prefill_with_checkpoint` one batch at a time: yields after each llama_decode (the
        batches and the checkpoint are the same, so the cache stays exact)."""
        start = len(self._tokens)
        split = None if checkpoint_at is None else checkpoint_at - MIN_CHUNK - start
        if split is not None and MIN_CHUNK <= split <= len(tokens) - MIN_CHUNK:
            yield from self._chunk_steps(tokens[:split], logits_last=False)
            self.save_checkpoint()
            tokens = tokens[split:]
        yield from self._chunk_steps(tokens, logits_last=True)

    def settle(self, n_prompt: int, *, decode: bool = True) -> None:
        """Decode the last answer's tokens again as one batch, as a fresh context would have.

        With decode False they only leave the cache (the next prompt decodes them, if it has them).
        """
        n_gen = len(self._tokens) - n_prompt
        if n_gen <= 0:
            return
        start = max(0, len(self._tokens) - max(n_gen, MIN_CHUNK))
        media = [i for i in range(start, len(self._tokens)) if self._tokens[i] < 0]
        if media:  # an image or clip is not text to decode again: start after it
            start = media[-1] + 1
        mem = self._memory()
        again = self._tokens[start:]
        window_kept = (self._n_swa <= 0
                       or lc.llama_memory_seq_pos_min(mem, self._seq) <= max(0, start - self._n_swa))
        lc.llama_memory_seq_rm(mem, self._seq, start, -1)
        self._tokens = self._tokens[:start]
        self._checkpoints = [c for c in self._checkpoints if c.n_tokens <= start]
        # Too short a batch would not match a fresh context: leave it to the next prompt. And
        # without the sliding window before `start`, the next prompt restores a checkpoint.
        if decode and window_kept and len(again) >= MIN_CHUNK:
            self._decode_chunks(again, logits_last=False, stoppable=False)

    def eval_media_chunk(self, prepared: Any, index: int, virtual: list[int], *, logits_last: bool) -> None:
        """Encode one image/audio chunk of a prepared prompt at the end of the cache."""
        n_past = len(self._tokens)
        new_n_past = prepared.eval_chunk(self.ctx, index, n_past, self._n_batch, logits_last=logits_last,
                                         seq_id=self._seq)
        if new_n_past - n_past != len(virtual):
            raise EngineError("internal", "libmtmd placed the media at unexpected positions.")
        self._tokens.extend(virtual)

    def decode(self, tokens: list[int], *, logits_last: bool) -> None:
        """Decode tokens at the end of the cache, in full batches; honours the stop flag."""
        with self._abortable():
            self._decode_chunks(tokens, logits_last)

    def _abortable(self) -> AbstractContextManager[object]:
        """Around prompt decoding: lets the stop flag end a batch early (LlamaEngine's abort
        callback); without it a stop takes effect between batches."""
        return nullcontext()

    def _decode_chunks(self, tokens: list[int], logits_last: bool, stoppable: bool = True) -> None:
        for _ in self._chunk_steps(tokens, logits_last, stoppable):
            pass

    def _chunk_steps(self, tokens: list[int], logits_last: bool, stoppable: bool = True) -> Iterator[None]:
        batch = self._batch
        seq = self._seq
        start = 0
        sizes = chunk_sizes(len(tokens), self._n_batch)
        for k, size in enumerate(sizes):
            chunk = tokens[start : start + size]
            start += size
            n_past = len(self._tokens)
            batch.n_tokens = size
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = n_past + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = False
            if logits_last and k == len(sizes) - 1:
                batch.logits[size - 1] = True
            rc = lc.llama_decode(self.ctx, batch)
            if stoppable and (rc == 2 or self.stop_event.is_set()):
                lc.llama_memory_seq_rm(self._memory(), seq, n_past, -1)
                raise Stopped
            if rc != 0:
                lc.llama_memory_seq_rm(self._memory(), seq, n_past, -1)
                raise EngineError("internal", f"llama.cpp could not process the prompt (code {rc}).")
            self._tokens.extend(chunk)
            yield
