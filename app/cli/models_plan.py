"""`models plan PATH.gguf`: fits, placement, memory per device and predicted speed of any GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import ModelShape, Options, estimate
from app.core.hardware.planner import (
    BADGE_TEXT,
    CONTEXTS,
    GIB,
    NO_FIT,
    Machine,
    badge_for,
    fits_machine,
    max_gpu_layers,
)
from app.core.hardware.speed import MachineSpeed, predict


def _layers(flag: str, shape: ModelShape, ctx: int, m: Machine, opts: Options) -> int | None:
    """chat's --n-gpu-layers in planner terms (0..n_layer+1); None: auto found nothing fitting."""
    if not m.has_gpu:
        return 0
    if flag == "auto":
        return max_gpu_layers(shape, ctx, m, opts)
    if flag == "all" or int(flag) < 0:
        return shape.n_layer + 1
    return min(int(flag), shape.n_layer + 1)


def plan_gguf(path: Path, m: Machine, speed: MachineSpeed, n_ctx: int | None,
              gpu_layers: str = "auto", kv_type: str = "f16") -> dict[str, Any]:
    """The plan of one local GGUF on machine `m`, as the JSON `models plan` prints."""
    shape = ModelShape.from_gguf(read_gguf_path(path), file_bytes=path.stat().st_size)
    opts = Options(kv_type=kv_type)
    ctx_max = shape.max_context or CONTEXTS[0]
    if n_ctx is None:
        # The largest standard context at which the requested placement fits (else the smallest).
        tries = [c for c in CONTEXTS if c <= ctx_max] or [min(ctx_max, CONTEXTS[-1])]
        n_ctx = next((c for c in tries if (g := _layers(gpu_layers, shape, c, m, opts)) is not None
                      and fits_machine(estimate(shape, c, g, opts, m.has_gpu,
                                                    gpu_max_tensor=m.gpu_max_tensor), m)),
                     tries[-1])
    g = _layers(gpu_layers, shape, n_ctx, m, opts)
    est = estimate(shape, n_ctx, g if g is not None else shape.n_layer + 1, opts, m.has_gpu,
                   gpu_max_tensor=m.gpu_max_tensor)
    fits = g is not None and fits_machine(est, m)
    badge = (badge_for(shape, est.gpu_layers) if m.has_gpu else "cpu_only") if fits else NO_FIT
    pred = predict(shape, speed, n_ctx, est.gpu_layers, kv_type=kv_type,
                   output_on_gpu=est.output_on_gpu)
    n = shape.n_layer
    on_gpu = n if est.gpu_layers > n else max(est.gpu_layers - 1, 0)
    where = f"{on_gpu} of {n} layers on the GPU" if m.has_gpu else "on the CPU"
    tok = f"≈ {pred.decode_tok_s:.1f} tok/s here"
    explanation = (f"{path.name}, {n_ctx} context, {where}: {BADGE_TEXT[badge]}, {tok}" if fits
                   else f"{path.name} needs about {est.total / GIB:.1f} GB at {n_ctx} context; "
                        "this machine has less free memory.")
    return {
        "path": str(path), "name": shape.name, "n_layer": n, "n_ctx": n_ctx, "fits": fits,
        "badge": badge, "gpu_layers": est.gpu_layers, "layers_on_gpu": on_gpu,
        "n_gpu_layers": -1 if est.gpu_layers > n else est.gpu_layers, "kv_type": kv_type,
        "moe": bool(shape.n_expert), "explanation": explanation,
        "memory": {
            "gpu": {"weights": est.gpu_weights, "kv": est.gpu_kv, "compute": est.gpu_compute,
                    "total": est.gpu_total},
            "cpu": {"weights": est.cpu_weights, "kv": est.cpu_kv, "compute": est.cpu_compute,
                    "total": est.cpu_total},
        },
        "estimate": {"gpu_bytes": est.gpu_total, "cpu_bytes": est.cpu_total, "kv_bytes": est.kv},
        "predicted_decode_tok_s": round(pred.decode_tok_s, 1),
        "predicted_prompt_tok_s": round(pred.prompt_tok_s, 1),
        "notes": list(pred.notes),
    }
