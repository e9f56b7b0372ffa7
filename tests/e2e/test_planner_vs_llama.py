"""The planner's memory estimate against what llama.cpp really allocates (its own log lines).

The real Gemma 3 270M and the synthetic Gemma 4 (sliding window, shared-KV layers, per-layer
embeddings, two head sizes) are loaded on the CPU at several context sizes and with the context
flags the plan may choose; each buffer llama.cpp reports (model, KV, compute) must be within 10%
of the estimate, and so must the total.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import MIB, ModelShape, Options, estimate
from tests.fixtures.gemma4 import synthetic_gemma4

pytestmark = pytest.mark.slow

_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


def llama_buffers(model: Path, n_ctx: int, opts: Options) -> dict[str, float]:
    """Load the model with llama.cpp and sum the buffer sizes it logs, by kind, in bytes."""
    import llama_cpp

    from app.core.engine.backends import load_backends

    load_backends()  # a GGML_BACKEND_DL build has no backend, not even the CPU, until loaded

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode(errors="replace"))

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    try:
        llm = llama_cpp.Llama(
            str(model), n_ctx=n_ctx, n_gpu_layers=0, n_batch=opts.n_batch,
            n_ubatch=opts.n_ubatch, flash_attn=opts.flash_attn, swa_full=opts.swa_full,
            verbose=True,
        )
        llm.close()
    finally:
        llama_cpp.llama_log_set(ctypes.cast(None, llama_cpp.llama_log_callback), ctypes.c_void_p(0))
    sizes: dict[str, float] = {}
    for m in _BUFFER.finditer("".join(lines)):
        sizes[m.group(2)] = sizes.get(m.group(2), 0.0) + float(m.group(3)) * MIB
    assert {"model", "KV", "compute"} <= sizes.keys(), "".join(lines)[-3000:]
    return sizes


CASES = [
    (2048, Options()),
    (8192, Options()),
    (32768, Options()),
    (8192, Options(flash_attn=False)),
    (8192, Options(swa_full=True)),
]


def _check(model: Path, n_ctx: int, opts: Options) -> None:
    shape = ModelShape.from_gguf(read_gguf_path(model))
    est = estimate(shape, n_ctx, 0, opts, has_gpu=False)
    real = llama_buffers(model, n_ctx, opts)
    pairs = {"model": est.cpu_weights, "KV": est.cpu_kv, "compute": est.cpu_compute}
    report = {k: (round(v / MIB, 1), round(real[k] / MIB, 1)) for k, v in pairs.items()}
    for kind, predicted in pairs.items():
        assert abs(predicted - real[kind]) <= 0.10 * real[kind] + 0.5 * MIB, (kind, report)
    total_real = real["model"] + real["KV"] + real["compute"] + real.get("output", 0)
    assert abs(est.cpu_total - total_real) <= 0.10 * total_real, report


@pytest.mark.parametrize(("n_ctx", "opts"), CASES, ids=[f"{c}-{o}" for c, o in CASES])
def test_gemma3_270m(model_270m: Path, n_ctx: int, opts: Options):
    _check(model_270m, n_ctx, opts)


@pytest.mark.parametrize(("n_ctx", "opts"), CASES + [(131072, Options())],
                         ids=[f"{c}-{o}" for c, o in CASES + [(131072, Options())]])
def test_synthetic_gemma4(n_ctx: int, opts: Options):
    _check(synthetic_gemma4()["model"], n_ctx, opts)
