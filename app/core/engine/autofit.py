"""Choose GPU layers when the user left them on "auto": the fit planner, run inside the engine host.

The host is the one process that may hold a GPU context, so it probes the devices and reads the
GGUF header right before loading, against the memory that is free at that moment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.engine.records import EngineError

if TYPE_CHECKING:
    from app.core.hardware.gguf_info import GGUFInfo

log = logging.getLogger(__name__)
GIB = 1024**3


def auto_gpu_layers(path: str, n_ctx: int, mmproj: str | None, kv_type: str = "f16") -> tuple[int, int]:
    """llama.cpp's n_gpu_layers for this model and context (-1 = all), and for a mixture of
    experts that does not fit whole the layers whose experts stay in RAM; EngineError if nothing
    fits."""
    from app.core.hardware.devices import probe
    from app.core.hardware.gguf_info import read_gguf_path
    from app.core.hardware.memory import ModelShape, Options, estimate
    from app.core.hardware.moe import choose_cpu_moe
    from app.core.hardware.planner import machine_from_report, max_gpu_layers

    try:
        shape = ModelShape.from_gguf(read_gguf_path(path), _projector(mmproj))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Offloading every layer of a file we cannot read would only defer the failure to a
        # worse place (an out-of-memory crash mid-load): refuse it here with the reason.
        raise EngineError(
            "load",
            f"Could not read the model header of {Path(path).name} ({exc}). The file is damaged "
            "or not a GGUF model: download it again or choose another file.",
        ) from exc
    machine = machine_from_report(probe())
    # The engine runs flash attention with offload and for a quantized cache (exact_numerics).
    opts = Options(kv_type=kv_type, flash_attn=machine.has_gpu or kv_type != "f16")
    layers = max_gpu_layers(shape, n_ctx, machine, opts)
    if machine.has_gpu and layers is not None and layers <= shape.n_layer and shape.n_expert:
        # Only ~4B of 26B parameters work per token: every layer on the GPU but the experts of
        # the first K layers beats whole layers left on the CPU.
        k = choose_cpu_moe(shape, n_ctx, machine.gpu_budget(), opts, machine.gpu_max_tensor)
        if k:
            return -1, k
    if layers is None:
        need = estimate(shape, n_ctx, 0, opts, has_gpu=machine.has_gpu).total
        raise EngineError(
            "load",
            f"{shape.name} needs about {need / GIB:.1f} GB at a {n_ctx:,}-token context, more than "
            "this machine has free. Try a smaller context length in Settings, a smaller quantisation, "
            "or close other programs.",
        )
    return (-1 if layers > shape.n_layer else layers), 0


def _projector(mmproj: str | None) -> GGUFInfo | None:
    """The projector's header, or None: llama.cpp loads the model without an unreadable projector."""
    if not mmproj:
        return None
    from app.core.hardware.gguf_info import read_gguf_path

    try:
        return read_gguf_path(mmproj)
    except (OSError, ValueError) as exc:
        log.warning("projector header unreadable, planning without it: %s", exc)
        return None
