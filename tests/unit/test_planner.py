"""The fit planner over a table of machine profiles, with the expected picks reasoned out.

Sizes used in the reasoning (catalog figures, GiB = 2^30 bytes; "at 8k/32k" = weights + KV +
compute buffers + projector as memory.estimate computes them, with flash attention and a
non-full SWA cache, which is what the plan tells the engine to use):

    E2B  Q8_0      4.6 file; all on GPU 3.8 GPU (+2.8 RAM: its 2.3 B per-layer embeddings stay
                   on the CPU); CPU only 6.13 at 8k, 6.19 at 16k, 6.30 at 32k
    E4B  Q4_K_M    5.0 file; all on GPU 4.4 at 8k, 4.8 at 32k (+2.7 RAM); CPU only 8.0 at 8k
                   (the CPU backend keeps a repacked copy of Q4_K weights besides the mapping)
    E4B  Q8_0      7.5 file; all on GPU 6.3 at 8k, 6.7 at 32k (+3.5 RAM); CPU only 9.5 at 32k
    26B  Q4_K_M   15.6 file; all on GPU 17.7 at 8k; ~0.5 per layer
    26B  Q8_0     25.0 file; all on GPU 27.1 at 8k
    31B  Q4_K_M   17.4 file; all on GPU 20.8 at 8k, 21.5 at 16k, 22.7 at 32k
    31B  Q8_0     30.4 file; all on GPU 33.8 at 8k, 35.7 at 32k

Budgets: GPU free - 5% - 0.6 GiB (driver context); RAM available - 10% - 1 GiB. A profile's
GPU of X GiB therefore offers X*0.95 - 0.6; RAM of Y GiB offers Y*0.9 - 1.
"""

from __future__ import annotations

import pytest

from app.core.catalog import builtin_catalog
from app.core.hardware.memory import Options, estimate
from app.core.hardware.planner import (
    CPU_ONLY,
    FULL_GPU,
    GIB,
    NO_FIT,
    PARTIAL,
    Machine,
    catalog_candidates,
    fit,
    recommend,
)

CANDS = catalog_candidates(builtin_catalog())

# (profile, machine, variant, quant, badge, n_ctx, GPU-layer range) with the reason for each.
PROFILES = [
    # 8 GB RAM, no GPU: budget 8*0.9-1 = 6.2. E4B Q4_K_M on the CPU needs 8.0 even at 8k;
    # E2B Q8_0 needs 6.19 at 16k (6.30 at 32k is too much) -> E2B at 16k.
    ("cpu-8", Machine.hypothetical(0, 8), "E2B", "Q8_0", CPU_ONLY, 16384, (0, 0)),
    # 16 GB RAM: budget 13.4 -> E4B Q8_0 at 32k needs 9.5. 26B/31B are never offered on
    # the CPU (too slow for chat, no audio input).
    ("cpu-16", Machine.hypothetical(0, 16), "E4B", "Q8_0", CPU_ONLY, 32768, (0, 0)),
    # 32 GB RAM: the same, although 26B Q4_K_M (26.8 with its repacked copy) would fit in
    # 27.8: CPU-only means E-series.
    ("cpu-32", Machine.hypothetical(0, 32), "E4B", "Q8_0", CPU_ONLY, 32768, (0, 0)),
    # 4 GB GPU: budget 3.2. No model fits whole (E2B Q8_0 needs 3.8). E-series may be split;
    # E4B Q4_K_M keeps about half its layers on the GPU, more than E4B Q8_0 would.
    ("gpu-4", Machine.hypothetical(4, 32), "E4B", "Q4_K_M", PARTIAL, 8192, (15, 25)),
    # 8 GB GPU: budget 7.0. E4B Q8_0 whole at 32k needs 6.7 -> fits, the 26B would have fewer
    # than half its layers on the GPU (7.0 / 0.5 per layer < 15 after the output and buffers).
    ("gpu-8", Machine.hypothetical(8, 32), "E4B", "Q8_0", FULL_GPU, 32768, (43, 43)),
    # 12 GB GPU: budget 10.8. 26B Q4_K_M (17.7) cannot be whole; at 8k ~16 of its 30 layers
    # fit, over half, so the MoE (4 B active per token) is split with the CPU. 31B would need
    # to be whole (dense), and is not.
    ("gpu-12", Machine.hypothetical(12, 32), "26B-A4B", "Q4_K_M", PARTIAL, 8192, (16, 19)),
    # 16 GB GPU: budget 14.6 -> still the 26B Q4_K_M split, now ~23 of 30 layers on the GPU.
    ("gpu-16", Machine.hypothetical(16, 32), "26B-A4B", "Q4_K_M", PARTIAL, 8192, (22, 26)),
    # 24 GB GPU: budget 22.2. 31B Q4_K_M whole: 22.7 at 32k (no), 21.5 at 16k (yes) -> 16k.
    ("gpu-24", Machine.hypothetical(24, 32), "31B", "Q4_K_M", FULL_GPU, 16384, (61, 61)),
    # 48 GB GPU: budget 45.0 -> 31B Q8_0 whole at 32k (35.7).
    ("gpu-48", Machine.hypothetical(48, 64), "31B", "Q8_0", FULL_GPU, 32768, (61, 61)),
    # 80 GB GPU: the same pick; nothing stronger exists, 32k is the planner's default ceiling.
    ("gpu-80", Machine.hypothetical(80, 128), "31B", "Q8_0", FULL_GPU, 32768, (61, 61)),
    # Apple 16 GB unified: Metal may wire 12 GB -> GPU budget 10.8, one pool of 13.4.
    # E4B Q8_0 at 32k: 6.7 GPU + 3.5 host = 10.2 <= 13.4; 26B Q4_K_M (17.7) does not fit.
    ("mac-16", Machine.hypothetical(ram_gib=16, unified=True), "E4B", "Q8_0", FULL_GPU, 32768,
     (43, 43)),
    # Apple 32 GB: GPU budget 22.2, pool 27.8 -> 31B Q4_K_M at 16k (21.5 + 1.1), as on 24 GB.
    ("mac-32", Machine.hypothetical(ram_gib=32, unified=True), "31B", "Q4_K_M", FULL_GPU, 16384,
     (61, 61)),
    # Apple 64 GB: GPU budget 45.0, pool 56.6 -> 31B Q8_0 at 32k (35.7 + 1.4).
    ("mac-64", Machine.hypothetical(ram_gib=64, unified=True), "31B", "Q8_0", FULL_GPU, 32768,
     (61, 61)),
]


@pytest.mark.parametrize(("name", "machine", "variant", "quant", "badge", "ctx", "layers"),
                         PROFILES, ids=[p[0] for p in PROFILES])
def test_profile_picks(name, machine, variant, quant, badge, ctx, layers):
    plan = recommend(CANDS, machine)
    assert plan.candidate is not None, plan.explanation
    assert (plan.candidate.variant, plan.candidate.quant, plan.badge, plan.n_ctx) == (
        variant, quant, badge, ctx), plan.explanation
    assert layers[0] <= plan.gpu_layers <= layers[1], plan.explanation
    # The plan respects the budgets it was made for.
    est = plan.estimate
    assert est is not None
    assert est.gpu_total <= machine.gpu_budget()
    if machine.unified:
        assert est.total <= machine.ram_budget()
    else:
        assert est.cpu_total <= machine.ram_budget()


def test_explanation_is_one_sentence_naming_the_choice():
    plan = recommend(CANDS, Machine.hypothetical(12, 32))
    assert plan.explanation.startswith("26B-A4B Q4_K_M, 8k context, ")
    assert " of 30 layers on the GPU: the strongest model that fits" in plan.explanation
    assert plan.explanation.count(".") == 0


def test_nothing_fits_a_tiny_machine():
    plan = recommend(CANDS, Machine.hypothetical(0, 2))
    assert plan.badge == NO_FIT and plan.candidate is None
    assert "close other programs" in plan.explanation


def test_disk_space_rules_out_downloads_but_not_installed_models():
    machine = Machine.hypothetical(48, 64, disk_gib=10)
    plan = recommend(CANDS, machine)
    # 10 GB of disk: only E4B Q8_0 (7.5 + 1 projector) among the strong ones can be downloaded.
    assert plan.candidate is not None and plan.candidate.model_id == "E4B-Q8_0"
    installed = catalog_candidates(builtin_catalog(), installed={"31B-Q8_0"})
    assert recommend(installed, machine).candidate.model_id == "31B-Q8_0"


def test_less_free_vram_means_fewer_layers():
    """Planning uses free memory: another process holding 4 GB costs layers."""
    c = next(c for c in CANDS if c.model_id == "26B-A4B-Q4_K_M")
    idle = fit(c, Machine(16 * GIB, 16 * GIB, "GPU", 32 * GIB, 32 * GIB), 8192)
    busy = fit(c, Machine(12 * GIB, 16 * GIB, "GPU", 32 * GIB, 32 * GIB), 8192)
    assert idle.badge == busy.badge == PARTIAL
    assert busy.gpu_layers < idle.gpu_layers - 5


def test_kv_cache_counts_only_the_window_on_sliding_layers():
    c = next(c for c in CANDS if c.model_id == "31B-Q4_K_M")
    s = c.shape
    # 31B: 10 global layers (every 6th), K and V 4 heads x 512 (flash attention, so no
    # padding of V); 50 sliding layers, 16 heads x 256, window 1024 + ubatch 512 = 1536 cells.
    at_8k = estimate(s, 8192, 0, Options(), has_gpu=False).kv
    assert at_8k == 10 * 8192 * (2048 + 2048) * 2 + 50 * 1536 * (4096 + 4096) * 2
    # Doubling the context grows only the global layers.
    at_16k = estimate(s, 16384, 0, Options(), has_gpu=False).kv
    assert at_16k - at_8k == 10 * 8192 * 4096 * 2
    # A full-size SWA cache (llama-cpp-python's default!) would cost 50 x 8192 cells instead.
    full = estimate(s, 8192, 0, Options(swa_full=True), has_gpu=False).kv
    assert full - at_8k == 50 * (8192 - 1536) * 8192 * 2


def test_shared_kv_layers_hold_no_cache():
    c = next(c for c in CANDS if c.model_id == "E2B-Q8_0")
    s = c.shape
    # E2B: 35 layers, the last 20 reuse earlier caches; of the first 15, layers 4, 9, 14 are
    # global (1 KV head x 512), the others sliding (1 x 256, window 512 + 512 = 1024 cells).
    kv = estimate(s, 8192, 0, Options(), has_gpu=False).kv
    assert kv == 3 * 8192 * (512 + 512) * 2 + 12 * 1024 * (256 + 256) * 2


def test_partial_offload_moves_layers_and_output_to_the_gpu():
    c = next(c for c in CANDS if c.model_id == "26B-A4B-Q4_K_M")
    s = c.shape
    none = estimate(s, 8192, 0, Options())
    out_only = estimate(s, 8192, 1, Options())
    ten = estimate(s, 8192, 11, Options())
    assert none.gpu_total == 0
    # n_gpu_layers=1 offloads just the output layer (a copy of the tied embedding).
    assert out_only.gpu_weights == s.output_bytes + s.output_tied_bytes
    assert ten.gpu_weights == out_only.gpu_weights + sum(s.layer_bytes[-10:])
    assert ten.cpu_weights == (s.input_bytes + sum(s.layer_bytes[:-10])
                               + sum(s.layer_repack[:-10]))
