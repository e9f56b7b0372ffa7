"""Machine speed cache (re-measured when the hardware changes) and the prediction's structure."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.catalog.catalog import builtin_catalog
from app.core.hardware.memory import ModelShape
from app.core.hardware.planner import catalog_candidates
from app.core.hardware.speed import (
    GpuSpeed,
    MachineSpeed,
    active_layer_bytes,
    kv_read_bytes,
    machine_speed,
    predict,
)

SPEED = MachineSpeed("sig", bandwidth=20e9, core_rate=60e9, core_flops=15e9, cpu_threads=2)


def _shapes() -> dict[tuple[str, str], ModelShape]:
    return {(c.variant, c.quant): c.shape for c in catalog_candidates(builtin_catalog())}


def test_cache_is_reused_and_redone_when_the_hardware_changes(tmp_path: Path) -> None:
    path = tmp_path / "speed.json"
    first = machine_speed(path=path)
    assert first.bandwidth > 1e8 and first.core_rate > 1e8
    assert machine_speed(path=path) == first  # cached: the very same figures
    data = json.loads(path.read_text())
    data["signature"] = "other-hardware"
    data["bandwidth"] = 1.0
    path.write_text(json.dumps(data))
    again = machine_speed(path=path)
    assert again.bandwidth > 1e8 and again.signature == first.signature
    gpu = machine_speed(gpus=(("Vulkan0", "gpu"),), path=path)
    assert gpu.signature != first.signature and gpu.gpus[0].name == "Vulkan0"


def test_q4_is_faster_than_q8_and_smaller_models_faster() -> None:
    shapes = _shapes()
    speed = {k: predict(s, SPEED).decode_tok_s for k, s in shapes.items()}
    assert speed[("E4B", "Q4_K_M")] > 1.3 * speed[("E4B", "Q8_0")]
    assert speed[("E4B", "Q4_K_M")] > speed[("31B", "Q4_K_M")] * 3


def test_moe_reads_only_the_active_experts() -> None:
    shape = _shapes()[("26B-A4B", "Q4_K_M")]
    active = sum(active_layer_bytes(shape))
    assert active < 0.3 * sum(shape.layer_bytes)


def test_q8_kv_reads_about_half_of_f16() -> None:
    shape = _shapes()[("E4B", "Q4_K_M")]
    f16 = sum(kv_read_bytes(shape, 8192, "f16"))
    q8 = sum(kv_read_bytes(shape, 8192, "q8_0"))
    assert 0.5 <= q8 / f16 <= 0.55


def test_gpu_layers_speed_up_decode() -> None:
    gpu = MachineSpeed("s", 20e9, 60e9, 15e9, 2, (GpuSpeed("GPU", 300e9),))
    shape = _shapes()[("E4B", "Q8_0")]
    cpu = predict(shape, gpu, gpu_layers=0).decode_tok_s
    half = predict(shape, gpu, gpu_layers=20).decode_tok_s
    full = predict(shape, gpu, gpu_layers=99).decode_tok_s
    assert cpu < half < full
