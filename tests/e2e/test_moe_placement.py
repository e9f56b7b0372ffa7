"""MoE expert placement on a tiny 26B-A4B-shaped synthetic Gemma 4 (8 experts, 2 per token).

The real engine loads it with `n_cpu_moe=K`: llama.cpp must report exactly the expert tensors
of layers 0..K-1 as overridden to the CPU buffer type, and the planner's per-device estimate
must match the buffers llama.cpp allocates within 10% (CPU buffers: this machine has no GPU).
The planner's choice of K is checked against budgets derived from the same estimate.
"""

from __future__ import annotations

import re
from collections import deque

import pytest

from app.core.engine import llama_log
from app.core.engine.llama_engine import LlamaEngine
from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import MIB, ModelShape, Options, estimate
from app.core.hardware.moe import choose_cpu_moe, expert_pattern
from app.core.hardware.speed import GpuSpeed, MachineSpeed, predict
from tests.fixtures.gemma4 import N_EXPERT, N_EXPERT_USED, N_LAYER, synthetic_gemma4_moe

pytestmark = pytest.mark.slow

_OVERRIDE = re.compile(r"tensor (blk\.(\d+)\.\S+) \(.*\) buffer type overridden to CPU")
N_CTX = 4096


def test_expert_tensors_of_the_first_k_layers_go_to_the_cpu_and_buffers_match(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llama_log, "_lines", deque(maxlen=100_000))  # keep every load line
    monkeypatch.setattr(llama_log, "keep_debug", True)  # the overrides are debug lines
    model = synthetic_gemma4_moe()
    shape = ModelShape.from_gguf(read_gguf_path(model))
    assert (shape.n_expert, shape.n_expert_used) == (N_EXPERT, N_EXPERT_USED)
    assert len(shape.layer_expert_bytes) == N_LAYER and min(shape.layer_expert_bytes) > 0
    k = 3
    engine = LlamaEngine()
    try:
        info = engine.load(str(model), n_ctx=N_CTX, n_gpu_layers=0, n_threads=1, n_cpu_moe=k)
        text = "\n".join(llama_log.lines())
    finally:
        engine.close()
    moved = {(m.group(1), int(m.group(2))) for m in _OVERRIDE.finditer(text)}
    assert {layer for _, layer in moved} == set(range(k)), text[-2000:]
    assert all(re.search(expert_pattern(k), name) for name, _ in moved)
    assert len(moved) == 3 * k  # gate_up and down experts, and the down scale, per layer
    est = estimate(shape, N_CTX, 0, Options(flash_attn=False), has_gpu=False, expert_cpu_layers=k)
    real = info.memory
    for kind, planned in (("model", est.cpu_weights), ("kv", est.cpu_kv),
                          ("compute", est.cpu_compute)):
        assert abs(planned - real[kind]) <= 0.10 * real[kind] + 0.5 * MIB, (kind, planned, real)


def test_planner_chooses_the_fewest_expert_layers_that_fit_and_predicts_faster_than_layers():
    shape = ModelShape.from_gguf(read_gguf_path(synthetic_gemma4_moe()))
    opts = Options()
    whole = estimate(shape, N_CTX, N_LAYER + 1, opts).gpu_total
    assert choose_cpu_moe(shape, N_CTX, whole, opts) == 0
    # Budget for everything but two layers' experts: K = 2 exactly.
    two = sum(shape.layer_expert_bytes[:2])
    assert choose_cpu_moe(shape, N_CTX, whole - two, opts) == 2
    assert choose_cpu_moe(shape, N_CTX, whole - two - 1, opts) == 3
    # Experts on the CPU read only the routed share; whole layers on the CPU read everything.
    speed = MachineSpeed("t", 20e9, 60e9, 15e9, 2, (GpuSpeed("GPU", 400e9, True),))
    experts_out = predict(shape, speed, N_CTX, N_LAYER + 1, expert_cpu_layers=2)
    layers_out = predict(shape, speed, N_CTX, N_LAYER + 1 - 2)
    assert experts_out.cpu_bytes < layers_out.cpu_bytes
