"""The speed-aware recommendation: the strongest model+quant predicted to meet the floor.

Machine speeds are fixed figures here (a desktop CPU with 55 GB/s copy bandwidth), so the picks
are reasoned, not measured: E4B Q4_K_M reads about 3.2 GB per token (≈ 10 tok/s at 0.6 x 55 GB/s),
E4B Q8_0 about 5.2 GB (≈ 6), E2B Q8_0 about 2.6 GB (≈ 13).
"""

from __future__ import annotations

from app.core.catalog import builtin_catalog
from app.core.hardware.planner import Candidate, Machine, catalog_candidates, recommend
from app.core.hardware.speed import GpuSpeed, MachineSpeed

CPU = MachineSpeed("fixed", bandwidth=55e9, core_rate=77e9, core_flops=19e9, cpu_threads=2)
STRENGTH = {"E2B": 1, "E4B": 2, "26B-A4B": 3, "31B": 4}
QUANT = {"Q4_K_M": 0, "Q8_0": 1}


def _cands() -> list[Candidate]:
    return catalog_candidates(builtin_catalog())


def test_cpu_only_pick_is_a_q4_quant_that_meets_the_floor() -> None:
    plan = recommend(_cands(), Machine.hypothetical(ram_gib=32), speed=CPU)
    assert plan.candidate is not None
    assert (plan.candidate.variant, plan.candidate.quant) == ("E4B", "Q4_K_M")
    assert plan.predicted_decode_tok_s is not None and plan.predicted_decode_tok_s >= 8
    assert plan.explanation.startswith("E4B Q4_K_M: ≈ ")
    assert "; Q8_0 would be ≈ " in plan.explanation
    assert plan.explanation.endswith("tok/s (32k context, on the CPU)"), plan.explanation
    weighed = {(p.candidate.variant, p.candidate.quant) for p in plan.alternatives if p.candidate}
    assert ("E4B", "Q8_0") in weighed and ("E2B", "Q8_0") in weighed
    # Each alternative says its own speed against the floor, not the pick's reasoning.
    for p in plan.alternatives:
        assert p.candidate is not None and p.predicted_decode_tok_s is not None
        side = "meets" if p.predicted_decode_tok_s >= 8 else "below"
        assert p.explanation == (f"{p.candidate.variant} {p.candidate.quant}: ≈ "
                                 f"{p.predicted_decode_tok_s:.0f} tok/s here, {side} the 8 tok/s "
                                 "floor"), p.explanation


def test_a_lower_floor_allows_the_stronger_quant() -> None:
    plan = recommend(_cands(), Machine.hypothetical(ram_gib=32), speed=CPU, floor=5)
    assert plan.candidate is not None and plan.candidate.quant == "Q8_0"


def test_nothing_meets_the_floor_gives_the_fastest_and_says_slow() -> None:
    slow = MachineSpeed("slow", bandwidth=5e9, core_rate=20e9, core_flops=5e9, cpu_threads=2)
    plan = recommend(_cands(), Machine.hypothetical(ram_gib=32), speed=slow)
    assert plan.candidate is not None and plan.predicted_decode_tok_s is not None
    assert all(plan.predicted_decode_tok_s >= (p.predicted_decode_tok_s or 0)
               for p in plan.alternatives)
    assert "it will be slow on this machine" in plan.explanation


def test_more_memory_never_gives_a_weaker_pick() -> None:
    gpu = MachineSpeed("gpu", 55e9, 77e9, 19e9, 2, (GpuSpeed("GPU", 300e9),))
    last = (0, -1)
    for vram in (0, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 80):
        plan = recommend(_cands(), Machine.hypothetical(vram_gib=vram, ram_gib=32), speed=gpu)
        assert plan.candidate is not None
        now = (STRENGTH[plan.candidate.variant], QUANT[plan.candidate.quant])
        assert now >= last, (vram, now, last)
        last = now
    # 80 GB holds 31B Q8_0, but it reads ~33 GB per token (≈ 5 tok/s at 0.6 x 300 GB/s): Q4_K_M.
    assert last == (4, 0)


def test_nothing_fits_keeps_the_plain_message() -> None:
    plan = recommend(_cands(), Machine.hypothetical(ram_gib=2), speed=CPU)
    assert plan.candidate is None and "No Gemma 4 model fits" in plan.explanation


def test_moe_that_does_not_fit_keeps_experts_in_ram_rather_than_whole_layers() -> None:
    gpu = MachineSpeed("gpu", 55e9, 77e9, 19e9, 2, (GpuSpeed("GPU", 300e9),))
    plan = recommend(_cands(), Machine.hypothetical(vram_gib=12, ram_gib=32), speed=gpu)
    assert plan.candidate is not None and plan.candidate.variant == "26B-A4B"
    n = plan.candidate.shape.n_layer
    assert plan.gpu_layers == n + 1 and 0 < plan.n_cpu_moe < n
    assert plan.estimate is not None and plan.estimate.gpu_total <= Machine.hypothetical(
        vram_gib=12, ram_gib=32).gpu_budget()
    assert "experts of" in plan.explanation
    # Faster than offloading whole layers at the same memory (what the plain planner does).
    plain = recommend(_cands(), Machine.hypothetical(vram_gib=12, ram_gib=32))
    assert plain.candidate is not None and plain.candidate.variant == "26B-A4B"
    from app.core.hardware.speed import predict

    layers = predict(plain.candidate.shape, gpu, plain.n_ctx, plain.gpu_layers).decode_tok_s
    assert plan.predicted_decode_tok_s is not None and plan.predicted_decode_tok_s > 1.5 * layers
