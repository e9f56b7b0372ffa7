"""MoE expert placement: keep the expert tensors of the first K layers in host memory.

Only a few experts work per token, so a mixture-of-experts model whose attention and shared
tensors stay on the GPU while some layers' experts sit in RAM runs far faster than one with
whole layers offloaded (llama.cpp's `--n-cpu-moe K`, done here with tensor buffer overrides).
"""

from __future__ import annotations

import ctypes

from app.core.hardware.memory import ModelShape, Options, estimate


def expert_pattern(k: int) -> str:
    """The regex llama.cpp matches against tensor names: experts of layers 0..k-1."""
    layers = "|".join(str(i) for i in range(k))
    return rf"blk\.({layers})\.ffn_(up|down|gate|gate_up)_exps"


def choose_cpu_moe(shape: ModelShape, n_ctx: int, gpu_budget: int, opts: Options,
                   gpu_max_tensor: int = 0) -> int | None:
    """The fewest layers K whose experts go to the CPU so all the rest fits `gpu_budget` bytes.

    0 when everything fits; None when even all experts on the CPU leave too much for the GPU.
    """
    if not shape.n_expert or not shape.layer_expert_bytes:
        return None
    for k in range(shape.n_layer + 1):
        est = estimate(shape, n_ctx, shape.n_layer + 1, opts, expert_cpu_layers=k,
                       gpu_max_tensor=gpu_max_tensor)
        if est.gpu_total <= gpu_budget:
            return k
    return None


def _libggml() -> ctypes.CDLL:
    """The libggml that libllama links: dlopen by path finds the copy already mapped."""
    from app.core.hardware.devices import llama_cpp_lib_dir

    folder = llama_cpp_lib_dir()
    for name in ("libggml.so.0", "libggml.0.dylib", "ggml.dll", "libggml.so", "libggml.dylib"):
        if folder is not None and (folder / name).exists():
            return ctypes.CDLL(str(folder / name), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
    raise OSError("libggml was not found next to llama.cpp")


class _Override(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


class CpuExpertOverrides:
    """llama_model_params.tensor_buft_overrides for K layers (keep it alive while loading)."""

    def __init__(self, k: int) -> None:
        ggml = _libggml()
        ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
        ggml.ggml_backend_dev_buffer_type.restype = ctypes.c_void_p
        ggml.ggml_backend_dev_buffer_type.argtypes = [ctypes.c_void_p]
        cpu = ggml.ggml_backend_dev_by_type(0)  # GGML_BACKEND_DEVICE_TYPE_CPU
        self.pattern = expert_pattern(k).encode()
        self.array = (_Override * 2)(_Override(self.pattern, ggml.ggml_backend_dev_buffer_type(cpu)),
                                     _Override(None, None))

    @property
    def pointer(self) -> int:
        return ctypes.addressof(self.array)
