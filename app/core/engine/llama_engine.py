"""The inference engine: llama.cpp through llama-cpp-python's C API, with prompt-prefix reuse.

Runs inside the engine host process. We drive llama.cpp's own C loop (batch, decode, sampler
chain) instead of `llama_cpp.Llama` so that the hot path is the same as raw llama.cpp, a stop
flag is honoured between tokens and inside prompt processing, and the KV cache of the shared
prompt prefix is reused across turns, with SWA checkpoints so sliding-window models reuse it too.
A little over 400 lines: loading (with its failure explanations) and the token loop share the
context's state; the vocabulary and the prompt cache are already mixins of their own.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import llama_cpp as lc

from app.core.engine import backends, llama_log
from app.core.engine.emitter import TokenEmitter
from app.core.engine.model_file import check_gguf_file, explain_load_failure
from app.core.engine.prompt_cache import PromptCache
from app.core.engine.records import (
    EngineError,
    GenerationStats,
    ModelInfo,
    SamplingParams,
    Stopped,
)
from app.core.engine.sampling import make_sampler
from app.core.engine.vocab import Vocabulary

_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        # A GGML_BACKEND_DL build has no backend, not even the CPU, until its modules are loaded.
        backends.load_backends(trial=True)
        lc.llama_backend_init()
        _backend_ready = True


def exact_numerics(n_gpu_layers: int) -> bool:
    """Whether to run with batch-invariant kernels, so the prompt cache is exact (see prompt_cache).

    On the CPU, flash attention and repacked weights give results that depend on how a prompt is
    cut into batches; without them they do not. The cost depends on the CPU variant: none
    measurable on zen4 (270M decode 60 vs 59 tok/s), 2-7% on haswell (48.3 vs 51.9 tok/s; the
    benchmark's "cost of the exact cache's kernels" row). GPU kernels differ by batch size
    whatever we choose, so with offload the fast settings stay.
    """
    return n_gpu_layers == 0 or not lc.llama_supports_gpu_offload()


def default_threads() -> int:
    """Decode threads: physical-ish cores, leaving room for the rest of a desktop's work.

    Every ggml graph step ends in a spinning barrier, so one of our threads preempted by another
    process stalls all the others for a scheduler slice: on 2 cores with a compiler running, 2
    threads decoded at 3.8 tok/s and 1 thread at 82. On big machines, half the logical CPUs (no SMT
    siblings) leaves that room already; on small ones one core stays free. Idle that costs less
    than the collapse under load (270M on 2 cores: 98 tok/s with 2 threads idle, 82 with 1 under
    load). llama.cpp's context parameters do not expose the threadpool's polling, so the thread
    count is the lever.
    """
    n = os.cpu_count() or 2
    if n >= 8:
        return n // 2
    return max(1, n - 1)


class LlamaEngine(PromptCache, Vocabulary):
    """One loaded model and its context. Not thread-safe except for `stop_event`."""

    def __init__(self) -> None:
        super().__init__()
        _init_backend()
        llama_log.install()
        self.model: Any = None
        self.ctx: Any = None
        self.vocab: Any = None
        self.info: ModelInfo | None = None
        self.chat_template: str | None = None
        self.bos_text = ""
        self.eos_text = ""
        self.media: Any = None  # app.core.engine.mtmd.MediaContext when a projector is loaded
        self.stop_event = threading.Event()
        self._n_prompt = 0  # tokens of the last prompt (what follows them was generated)
        self._batch: Any = None
        self._n_batch = 512
        self._n_swa = 0
        self.slots: list[Any] = []  # app.core.engine.batching.Slot per sequence when n_parallel > 1
        # Keep ctypes callbacks alive as long as llama.cpp may call them.
        self._abort_cb = lc.ggml_abort_callback(lambda _data: self.stop_event.is_set())
        self._no_abort_cb = lc.ggml_abort_callback()
        self._piece_buf = ctypes.create_string_buffer(64)
        self.forget_pieces()

    # ----- loading -------------------------------------------------------------------------

    def load(
        self,
        path: str,
        *,
        n_ctx: int = 8192,
        n_gpu_layers: int = -1,
        n_threads: int | None = None,
        mmproj: str | None = None,
        n_batch: int = 512,
        flash_attn: bool | None = None,
        swa_full: bool = False,
        on_progress: Callable[[float], None] | None = None,
        kv_type: str = "f16",
        n_cpu_moe: int = 0,
        n_parallel: int = 1,
    ) -> ModelInfo:
        """Load a GGUF (and optionally its projector); raises EngineError with a plain message.

        flash_attn None chooses: on with GPU offload, off on the CPU (see `exact_numerics`).
        n_parallel > 1 makes one sequence per slot for continuous batching (see `batching`); the
        context is split evenly between them, and `ModelInfo.n_ctx` is one request's share.
        """
        self.close()
        check_gguf_file(path)
        started = time.perf_counter()
        threads = n_threads or default_threads()

        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers if n_gpu_layers >= 0 else 999
        mparams.use_mmap = True
        exact = exact_numerics(n_gpu_layers)
        if exact:
            mparams.use_extra_bufts = False  # repacked weights: results depend on batch size
        if flash_attn is None:
            flash_attn = not exact
        if n_cpu_moe > 0:  # MoE: experts of the first K layers stay in host memory
            from app.core.hardware.moe import CpuExpertOverrides

            self._moe_overrides = CpuExpertOverrides(n_cpu_moe)
            mparams.tensor_buft_overrides = self._moe_overrides.pointer
        if on_progress is not None:
            def _progress(fraction: float, _data: Any) -> bool:
                on_progress(float(fraction))
                return True

            self._progress_cb = lc.llama_progress_callback(_progress)
            mparams.progress_callback = self._progress_cb
        llama_log.clear()
        model = lc.llama_model_load_from_file(path.encode("utf-8"), mparams)
        if not model:
            raise EngineError("load", explain_load_failure(path, llama_log.recent_errors()))
        self.model = model
        self.vocab = lc.llama_model_get_vocab(model)
        self.forget_pieces()
        n_ctx_train = lc.llama_model_n_ctx_train(model)
        if n_ctx <= 0:
            n_ctx = n_ctx_train
        n_ctx = min(n_ctx, n_ctx_train) if n_ctx_train > 0 else n_ctx

        cparams = lc.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        # One KV stream per sequence (not unified): a sequence's cells start at 0 as when it is
        # alone, and decoding several sequences in one batch gives each the logits it gets alone
        # (measured bit for bit on the 270M; a unified cache differs by up to 1.07).
        cparams.n_seq_max = max(1, n_parallel)
        cparams.kv_unified = False
        # The planner's memory figures assume these (llama.cpp's default swa_full=True would keep
        # the whole context in every sliding-window layer); the prompt cache copes via checkpoints.
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.swa_full = swa_full
        # "CPU only" means it: llama.cpp would otherwise still send the big batches of a prompt
        # to a GPU it finds (weights copied over per product), which breaks the CPU's exactness
        # and wakes a GPU the user turned off (on a software device, minutes per prompt).
        cparams.op_offload = n_gpu_layers != 0
        if kv_type == "q8_0":  # a quantized V cache needs flash attention in llama.cpp
            cparams.type_k = cparams.type_v = lc.GGML_TYPE_Q8_0
            cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise EngineError(
                "load",
                f"Not enough memory to create a {n_ctx:,}-token context for this model. "
                "Try a smaller context length in Settings.",
            )
        self.ctx = ctx
        backends.offload_from_log(llama_log.lines(), id(self.model))  # before the log scrolls on
        self._n_batch = n_batch
        self._n_swa = lc.llama_model_n_swa(model)
        self._batch = lc.llama_batch_init(n_batch, 0, 1)
        if n_parallel > 1:
            from app.core.engine.batching import Slot

            self.slots = [Slot(self, seq) for seq in range(n_parallel)]

        self.chat_template = self._meta("tokenizer.chat_template")
        self.bos_text = self._piece(lc.llama_vocab_bos(self.vocab), special=True)
        self.eos_text = self._piece(lc.llama_vocab_eos(self.vocab), special=True)
        name = self._meta("general.name") or Path(path).stem
        info = ModelInfo(
            path=path,
            name=name,
            arch=self._meta("general.architecture") or "unknown",
            n_ctx=lc.llama_n_ctx_seq(ctx),  # one request's share when several run at once
            n_ctx_train=n_ctx_train,
            n_gpu_layers=min(mparams.n_gpu_layers, lc.llama_model_n_layer(model) + 1),
            n_layers=lc.llama_model_n_layer(model),
            size_bytes=lc.llama_model_size(model),
            has_template=bool(self.chat_template),
            memory=llama_log.memory_summary(),
            mmproj=mmproj or None,
            n_threads=threads,
            kv_type=kv_type,
        )
        if mmproj:
            self._load_projector(mmproj, threads, n_gpu_layers != 0)
            info.supports_vision = bool(self.media.supports_vision)
            info.projector_device = self.media.device
            info.supports_audio = bool(self.media.supports_audio)
        info.load_seconds = time.perf_counter() - started
        self.info = info
        return info

    def _load_projector(self, mmproj: str, threads: int, use_gpu: bool) -> None:
        from app.core.engine.mtmd import MediaContext

        check_gguf_file(mmproj)
        try:
            self.media = MediaContext(mmproj, self.model, n_threads=threads, use_gpu=use_gpu)
        except Exception as exc:  # noqa: BLE001 - the projector is optional; say why it failed
            self.close()
            raise EngineError(
                "load",
                f"The projector {Path(mmproj).name} does not fit this model: {exc}",
            ) from exc

    def close(self) -> None:
        """Free the context and model (the host process exiting frees everything anyway)."""
        if self.media is not None:
            self.media.close()
            self.media = None
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None
            backends.release_freed_memory()
        self._tokens = []
        self._checkpoints = []
        self.slots = []
        self.info = None

    # ----- helpers -------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        size = lc.llama_model_meta_val_str(self.model, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        lc.llama_model_meta_val_str(self.model, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", errors="replace")

    @contextmanager
    def _abortable(self) -> Iterator[None]:
        # ggml polls the abort callback after every graph node: worth it for long prompts,
        # measurable overhead for single-token decodes, so it is on only around prompts.
        lc.llama_set_abort_callback(self.ctx, self._abort_cb, None)
        try:
            yield
        finally:
            lc.llama_set_abort_callback(self.ctx, self._no_abort_cb, None)

    def settle_last_answer(self) -> None:
        """After an answer was sent: its tokens again as one batch (see PromptCache.settle)."""
        if self.ctx:
            self.settle(self._n_prompt)

    def drop_last_answer(self) -> None:
        """After an answer, when another request waits: its tokens leave the cache unsettled."""
        if self.ctx:
            self.settle(self._n_prompt, decode=False)

    # ----- generation ----------------------------------------------------------------------

    def generate_tokens(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        on_piece: Callable[[str], None],
        *,
        checkpoint_at: int | None = None,
    ) -> GenerationStats:
        """Stream the completion of `prompt_tokens` through on_piece (text, control tokens kept)."""

        def prefill(stats: GenerationStats) -> None:
            n_cached = self.reuse_prefix(prompt_tokens)
            stats.cached_tokens = n_cached
            self.prefill_with_checkpoint(prompt_tokens[n_cached:], checkpoint_at)

        return self.generate(len(prompt_tokens), params, on_piece, prefill)

    def generate(
        self,
        n_prompt: int,
        params: SamplingParams,
        on_piece: Callable[[str], None],
        prefill: Callable[[GenerationStats], None],
    ) -> GenerationStats:
        """Run `prefill` (which leaves the prompt's last logits ready), then sample until done."""
        t0 = time.perf_counter()
        stats = GenerationStats(prompt_tokens=n_prompt, n_ctx=self.check_fits(n_prompt))
        self.stop_event.clear()
        sampler = make_sampler(self.vocab, params)
        self._n_prompt = n_prompt
        try:
            prefill(stats)
            self._generate_loop(sampler, params, on_piece, stats, t0)
        except Stopped:
            stats.stopped = True
            stats.finish_reason = "stopped"
        finally:
            lc.llama_sampler_free(sampler)
        self.close_stats(stats, len(self._tokens))
        return stats

    def check_fits(self, n_prompt: int) -> int:
        """One request's context (all of it, or a slot's share); EngineError if the prompt fills it."""
        n_ctx = int(lc.llama_n_ctx_seq(self.ctx))
        if n_prompt >= n_ctx:
            share = f", a {len(self.slots)}-request server's share" if self.slots else ""
            raise EngineError(
                "context",
                f"The conversation is longer than the model's context ({n_prompt:,} tokens, "
                f"context {n_ctx:,}{share}). Start a new chat or raise the context length in Settings.",
            )
        return n_ctx

    def close_stats(self, stats: GenerationStats, n_past: int) -> None:
        stats.n_past = n_past
        stats.offload = backends.offload_from_log(llama_log.lines(), id(self.model))
        stats.cpu_variant = backends.cpu_variant()
        backends.mark_cpu_variant_working()  # the first decode went through on this variant

    def _generate_loop(
        self,
        sampler: Any,
        params: SamplingParams,
        on_piece: Callable[[str], None],
        stats: GenerationStats,
        t0: float,
    ) -> None:
        emit = TokenEmitter(self, on_piece, stats, t0)
        n_ctx = stats.n_ctx
        batch = self._batch
        # One token a step: only its id and position change from one step to the next.
        batch.n_tokens = 1
        batch.n_seq_id[0] = 1
        batch.seq_id[0][0] = 0
        batch.logits[0] = True
        token_at, pos_at = batch.token, batch.pos
        idx = -1
        # This thread's CPU time: the work itself, not the moments another process held the core.
        clock = time.thread_time
        outside = 0.0
        steps = 0
        start = len(self._tokens)
        try:
            for n in range(params.max_tokens):
                if self.stop_event.is_set():
                    raise Stopped
                token = lc.llama_sampler_sample(sampler, self.ctx, idx)
                t_sampled = clock()
                if not emit.take(token, n):
                    return
                if len(self._tokens) + 1 >= n_ctx:
                    stats.finish_reason = "context"
                    return
                token_at[0] = token
                pos_at[0] = len(self._tokens)
                outside += clock() - t_sampled
                steps = n + 1
                rc = lc.llama_decode(self.ctx, batch)
                if rc == 2:
                    raise Stopped
                if rc != 0:
                    raise EngineError("internal", f"llama.cpp stopped decoding (code {rc}).")
                self._tokens.append(token)
                idx = 0
            stats.finish_reason = "length"
        finally:
            # Figures worked out once, not at every token.
            if steps:
                stats.overhead_us = outside / steps * 1e6
            emit.finish(len(self._tokens) - start)

