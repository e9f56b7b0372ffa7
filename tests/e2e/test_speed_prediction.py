"""Predicted decode speed against real llama.cpp decode on this machine, measured in the test.

The machine figures (copy bandwidth, core rate) and the decode speed are taken interleaved in
the same test, one thread each, timed in thread CPU time (the 2 shared CI cores run other
tests at the same time), so the check is the model's ratio, not an absolute time: the
prediction must be within ±30% of the measurement.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import ModelShape
from app.core.hardware.speed import MachineSpeed, measure_bandwidth, measure_core, predict
from tests.fixtures.gemma4 import synthetic_gemma4

pytestmark = pytest.mark.slow


def measured_decode_tok_s(model: Path, threads: int = 1, tokens: int = 48,
                          between: Callable[[], None] | None = None) -> float:
    """Single-token decode rate (CPU time, median) of real llama.cpp with the app's settings."""
    import llama_cpp as lc

    from app.core.engine.backends import load_backends

    load_backends()  # a GGML_BACKEND_DL build has no backend, not even the CPU, until loaded
    lc.llama_backend_init()
    quiet = lc.llama_log_callback(lambda *_: None)
    lc.llama_log_set(quiet, None)
    mp = lc.llama_model_default_params()
    mp.use_extra_bufts = False  # as the app loads for the CPU (exact numerics)
    mdl = lc.llama_model_load_from_file(str(model).encode(), mp)
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 2048, 512, 512
    cp.n_threads = cp.n_threads_batch = threads
    cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = lc.llama_init_from_model(mdl, cp)
    try:
        prompt = (lc.llama_token * 8)(2, *range(100, 107))
        assert lc.llama_decode(ctx, lc.llama_batch_get_one(prompt, 8)) == 0
        one = (lc.llama_token * 1)()
        times = []
        for i in range(tokens):
            if between is not None and i % 12 == 0:
                between()  # the machine benchmark runs interleaved, under the same load
            one[0] = 200 + i
            t = time.thread_time()
            assert lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) == 0
            lc.llama_get_logits_ith(ctx, -1)
            times.append(time.thread_time() - t)
    finally:
        lc.llama_free(ctx)
        lc.llama_model_free(mdl)
        lc.llama_log_set(ctypes.cast(None, lc.llama_log_callback), ctypes.c_void_p(0))
    # CPU time of this thread (one thread: ggml computes on the caller), median token: like the
    # benchmark's CPU-time figures it leaves out the time other processes held the core.
    times.sort()
    return 1.0 / times[len(times) // 2]


def _check(model: Path) -> None:
    figures: list[MachineSpeed] = []

    def bench() -> None:
        bw = measure_bandwidth(0.08, clock=time.thread_time)
        rate, flops = measure_core(0.03, clock=time.thread_time)
        figures.append(MachineSpeed("test", bw, rate, flops, 1))

    real = measured_decode_tok_s(model, between=bench)
    speed = MachineSpeed("test", max(f.bandwidth for f in figures),
                         max(f.core_rate for f in figures), max(f.core_flops for f in figures), 1)
    shape = ModelShape.from_gguf(read_gguf_path(model))
    pred = predict(shape, speed, n_ctx=2048, gpu_layers=0, threads=1, fill=16).decode_tok_s
    print(f"{model.name}: predicted {pred:.1f} tok/s, measured {real:.1f} tok/s")
    assert 0.7 * real <= pred <= 1.3 * real, (pred, real)


def test_gemma3_270m(model_270m: Path) -> None:
    _check(model_270m)


def test_synthetic_gemma4() -> None:
    _check(synthetic_gemma4()["model"])
