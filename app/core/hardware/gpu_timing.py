"""Time a short ggml operation on a GPU device: the decode's own kind of work.

Decode multiplies every weight matrix by one activation vector. So the measurement is that: a
graph of quantized (Q4_K) matrix-vector products on the device, through ggml's backend API with
ctypes, timed after a warm-up run (the first run compiles the device's pipelines). Two figures
come out:
- `rate`: weight bytes read per second by large products (the bandwidth-bound part);
- `per_op`: seconds each operation costs beyond its bytes (dispatch and synchronisation, which
  weigh on small models and on software devices such as lavapipe);
- `norm_op`: seconds of one RMS norm, a workgroup-wide reduction. On most GPUs it costs what any
  small operation does; on lavapipe, which runs a workgroup's barriers on CPU threads, about 10x
  a small product, and Gemma 4 runs about 8 norms per layer;
- `matvec_op`: seconds of one small matrix-vector product in a chain beyond reading its
  weights. Its rows are reduced across a workgroup too: on lavapipe several times a chained
  scale, and a layer runs 7 to 10 products.

It runs in the hardware probe's child process, since creating a device context holds memory for
the life of the process.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

GGML_TYPE_F32 = 0
GGML_TYPE_Q4_K = 12
_Q4_K_BYTES_PER_256 = 144
_ROWS = 4096  # each weight: 4096 x 4096 Q4_K, 9 MiB (under every device's storage range)
_VECTOR = 2048  # the activation vector of the chained-operation probes
_SMALL = 256  # each weight of the chained products: one Q4_K block a row


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool)]


@dataclass(frozen=True)
class DeviceTiming:
    rate: float  # weight bytes per second in matrix-vector products
    per_op: float  # seconds per operation beyond reading its weights
    norm_op: float = 0.0  # seconds per RMS norm of one activation vector
    matvec_op: float = 0.0  # seconds per small chained matrix-vector product


def _bind(lib: ctypes.CDLL) -> None:
    p, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
    sig = {
        "ggml_tensor_overhead": (sz, []),
        "ggml_graph_overhead": (sz, []),
        "ggml_init": (p, [_InitParams]),
        "ggml_free": (None, [p]),
        "ggml_new_tensor_2d": (p, [p, ctypes.c_int, i64, i64]),
        "ggml_mul_mat": (p, [p, p, p]),
        "ggml_rms_norm": (p, [p, p, ctypes.c_float]),
        "ggml_scale": (p, [p, p, ctypes.c_float]),
        "ggml_new_graph": (p, [p]),
        "ggml_build_forward_expand": (None, [p, p]),
        "ggml_backend_dev_init": (p, [p, ctypes.c_char_p]),
        "ggml_backend_free": (None, [p]),
        "ggml_backend_alloc_ctx_tensors": (p, [p, p]),
        "ggml_backend_buffer_clear": (None, [p, ctypes.c_uint8]),
        "ggml_backend_buffer_free": (None, [p]),
        "ggml_backend_graph_compute": (ctypes.c_int, [p, p]),
        "ggml_backend_synchronize": (None, [p]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


def _run(lib: ctypes.CDLL, backend: int, n_ops: int, size: int, repeats: int,
         chain: str = "") -> float:
    """Best seconds for one graph of `n_ops` products of distinct square Q4_K weights with one
    vector of `size`; `chain` "scale", "norm" or "matvec": instead a chain of `n_ops` such
    operations on the vector, each waiting for the one before, as a decode graph's operations
    do."""
    tensors = 3 * n_ops + 8
    ctx = lib.ggml_init(_InitParams(tensors * lib.ggml_tensor_overhead() + lib.ggml_graph_overhead(),
                                    None, True))
    if not ctx:
        raise OSError("ggml_init failed")
    buf = None
    try:
        graph = lib.ggml_new_graph(ctx)
        x = lib.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, size, 1)
        for _ in range(n_ops):
            if chain in ("norm", "scale"):
                x = (lib.ggml_rms_norm(ctx, x, 1e-6) if chain == "norm"
                     else lib.ggml_scale(ctx, x, 0.5))
                lib.ggml_build_forward_expand(graph, x)
                continue
            w = lib.ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_K, size, size)
            product = lib.ggml_mul_mat(ctx, w, x)
            if chain:
                x = product
            lib.ggml_build_forward_expand(graph, product)
        buf = lib.ggml_backend_alloc_ctx_tensors(ctx, backend)
        if not buf:
            raise OSError("the device could not allocate the test weights")
        lib.ggml_backend_buffer_clear(buf, 0)  # zero blocks: valid scales, no NaN
        best = float("inf")
        for run in range(repeats + 1):  # the first run compiles pipelines: not counted
            t = time.perf_counter()
            if lib.ggml_backend_graph_compute(backend, graph) != 0:
                raise OSError("the device could not run a matrix product")
            lib.ggml_backend_synchronize(backend)
            if run:
                best = min(best, time.perf_counter() - t)
        return best
    finally:
        if buf:
            lib.ggml_backend_buffer_free(buf)
        lib.ggml_free(ctx)


def time_device(lib: ctypes.CDLL, device: int, budget_s: float = 0.5) -> DeviceTiming:
    """Time device `device` (a ggml_backend_dev_t) of the libggml `lib`; about `budget_s` seconds."""
    _bind(lib)
    backend = lib.ggml_backend_dev_init(device, None)
    if not backend:
        raise OSError("the device could not be opened")
    try:
        # A chain of small operations: no weights, the time is each one's dispatch and the wait
        # for the one before, which is how a decode graph's operations run.
        small_ops = 64
        per_op = _run(lib, backend, small_ops, _VECTOR, 2, chain="scale") / small_ops
        norm_op = _run(lib, backend, 16, _VECTOR, 2, chain="norm") / 16
        matvec_op = _run(lib, backend, 16, _SMALL, 4, chain="matvec") / 16
        weight = _ROWS * _ROWS // 256 * _Q4_K_BYTES_PER_256
        # Enough distinct weights to leave the caches (64 MiB), fewer on a slow device.
        one = _run(lib, backend, 1, _ROWS, 1)
        n_ops = max(1, min(8, int(budget_s / 3 / max(one, 1e-6))))
        big = _run(lib, backend, n_ops, _ROWS, 2)
        rate = n_ops * weight / max(big - n_ops * per_op, 1e-9)
        # A small product's fixed part: what its chain took beyond reading its weights.
        small = _SMALL * _SMALL // 256 * _Q4_K_BYTES_PER_256
        matvec_op = max(per_op, matvec_op - small / rate)
        rate = n_ops * weight / max(big - n_ops * matvec_op, 1e-9)
        return DeviceTiming(rate, per_op, norm_op, matvec_op)
    finally:
        lib.ggml_backend_free(backend)


def time_gpus(folder: Path | None = None) -> dict[str, DeviceTiming]:
    """Timings of every GPU-type device ggml registered, by device description."""
    from app.core.engine.backends import load_backends
    from app.core.hardware.devices import _bind_ggml, llama_cpp_lib_dir

    folder = folder or llama_cpp_lib_dir()
    if folder is None:
        return {}
    load_backends()
    lib = _bind_ggml(folder)
    out: dict[str, DeviceTiming] = {}
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) not in (1, 2):  # GPU, integrated GPU
            continue
        description = (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace")
        try:
            out[description] = time_device(lib, dev)
        except OSError:
            continue
    return out


def time_gpus_in_subprocess(timeout: float = 60.0) -> dict[str, DeviceTiming]:
    """`time_gpus` in a child process: a device context would hold memory for the caller's life."""
    import json
    import subprocess
    import sys

    command = ([sys.executable, "--time-gpus"] if getattr(sys, "frozen", False)
               else [sys.executable, "-m", "app.core.hardware.gpu_timing"])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=Path(__file__).resolve().parents[3])
        data = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {name: DeviceTiming(float(t["rate"]), float(t["per_op"]), float(t.get("norm_op", 0.0)),
                               float(t.get("matvec_op", 0.0)))
            for name, t in data.items()}


def main() -> int:
    """Print every GPU's timing as JSON (the child process of `time_gpus_in_subprocess`)."""
    import json
    from dataclasses import asdict

    print(json.dumps({name: asdict(t) for name, t in time_gpus().items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
