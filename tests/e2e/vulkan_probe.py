"""Run inside a subprocess by the Vulkan tests: load a model with the app's engine at a given
GPU layer count and report what it did, as one JSON line.

ggml reads GGML_VK_VISIBLE_DEVICES when the Vulkan module loads, so each placement runs in a
process of its own with the environment the test chose.

Reports: the first token's logits (saved as .npy), llama.cpp's own offload count, the buffers it
logged per device, and the planner's estimate for the same placement.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def main(model: str, gpu_layers: int, prompt: str, logits_out: str) -> None:
    from app.core.engine.backends import load_backends

    load_backends()
    import llama_cpp as lc

    from app.core.engine import backends, llama_log
    from app.core.engine.llama_engine import LlamaEngine

    llama_log.install(echo=False)
    llama_log.clear()
    engine = LlamaEngine()
    info = engine.load(model, n_gpu_layers=gpu_layers, n_threads=2, n_ctx=2048,
                       n_cpu_moe=int(os.environ.get("PROBE_CPU_MOE", "0")))
    offload = backends.offload_from_log(llama_log.lines(), id(engine.model))
    buffers = llama_log.buffers_by_device()
    tokens = engine.tokenize(prompt, add_special=True, parse_special=False)
    engine.decode(tokens, logits_last=True)
    n_vocab = lc.llama_vocab_n_tokens(engine.vocab)
    logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(engine.ctx, -1), shape=(n_vocab,)).copy()
    np.save(logits_out, logits)
    speed = _decode_and_device_speed(engine, lc) if os.environ.get("PROBE_SPEED") else None
    engine.close()
    print(json.dumps({"offload": offload, "buffers": buffers, "n_layers": info.n_layers,
                      "n_gpu_layers": info.n_gpu_layers, "speed": speed}))


def _decode_and_device_speed(engine: object, lc: object,
                             rounds: int = 5) -> list[dict[str, float]]:
    """Rounds of the app's device timing (its own child process, as the probe runs it) each
    followed by single-token decodes, so that each round's two halves see the same load: lavapipe
    runs on the CPU's threads, and under CI load its costs have varied 3x within minutes. Wall
    time; the best decode of each round and the timing child's own best figures."""
    import time
    from dataclasses import asdict

    from app.core.hardware.gpu_timing import time_gpus_in_subprocess

    out = []
    one = (lc.llama_token * 1)()  # type: ignore[attr-defined]
    for k in range(3):  # the first single-token graphs build the device's pipelines: not timed
        one[0] = 100 + k
        assert lc.llama_decode(engine.ctx, lc.llama_batch_get_one(one, 1)) == 0  # type: ignore[attr-defined]
    for i in range(rounds):
        (timing,) = time_gpus_in_subprocess().values()
        decode = []
        for k in range(5):
            one[0] = 200 + 5 * i + k
            t = time.perf_counter()
            rc = lc.llama_decode(engine.ctx, lc.llama_batch_get_one(one, 1))  # type: ignore[attr-defined]
            lc.llama_get_logits_ith(engine.ctx, -1)  # type: ignore[attr-defined]
            decode.append(time.perf_counter() - t)
            assert rc == 0, rc
        out.append({"decode_tok_s": 1.0 / min(decode), **asdict(timing)})
    return out


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
    sys.stdout.flush()
    Path(sys.argv[4]).touch()
