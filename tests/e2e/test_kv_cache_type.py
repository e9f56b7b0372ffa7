"""A q8_0 KV cache: about half the KV memory of f16, the same greedy tokens, and planned so.

The real engine loads the 270M twice (f16 and q8_0 KV, flash attention on both, since a
quantized V cache requires it); llama.cpp's own buffer lines give the KV size, and greedy
decoding from the loaded context gives the first tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.engine.llama_engine import LlamaEngine
from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import MIB, ModelShape, Options, estimate

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is Paris. The capital of Italy is"
N_CTX = 4096


def _greedy(engine: LlamaEngine, n: int) -> list[int]:
    import llama_cpp as lc

    data = PROMPT.encode()
    arr = (lc.llama_token * (len(data) + 8))()
    count = lc.llama_tokenize(engine.vocab, data, len(data), arr, len(data) + 8, True, False)
    assert lc.llama_decode(engine.ctx, lc.llama_batch_get_one(arr, count)) == 0
    n_vocab = lc.llama_vocab_n_tokens(engine.vocab)
    out: list[int] = []
    one = (lc.llama_token * 1)()
    for _ in range(n):
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(engine.ctx, -1), shape=(n_vocab,))
        one[0] = int(np.argmax(logits))
        out.append(one[0])
        assert lc.llama_decode(engine.ctx, lc.llama_batch_get_one(one, 1)) == 0
    return out


def _run(model: Path, kv_type: str) -> tuple[int, list[int]]:
    engine = LlamaEngine()
    try:
        info = engine.load(str(model), n_ctx=N_CTX, n_gpu_layers=0, n_threads=1,
                           flash_attn=True, kv_type=kv_type)
        return info.memory["kv"], _greedy(engine, 8)
    finally:
        engine.close()


def test_q8_0_kv_is_half_the_size_with_the_same_first_tokens(model_270m: Path) -> None:
    kv_f16, tokens_f16 = _run(model_270m, "f16")
    kv_q8, tokens_q8 = _run(model_270m, "q8_0")
    ratio = kv_q8 / kv_f16
    assert 0.5 <= ratio <= 0.56, (kv_q8, kv_f16)  # 34 bytes per 32 values against 64
    # Greedy decoding of a short factual prompt: q8_0 keys/values change logits by ~1e-3,
    # far below the gap between the top two tokens here.
    assert tokens_q8 == tokens_f16
    # The planner sizes the q8_0 cache as llama.cpp does (within 10%).
    shape = ModelShape.from_gguf(read_gguf_path(model_270m))
    planned = estimate(shape, N_CTX, 0, Options(kv_type="q8_0"), has_gpu=False).cpu_kv
    assert abs(planned - kv_q8) <= 0.10 * kv_q8 + 0.5 * MIB, (planned, kv_q8)
