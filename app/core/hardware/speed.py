"""How fast a model will run here: measured machine speeds and the decode/prompt prediction.

Decode on a CPU (and mostly on a GPU) is bound by memory traffic: every token reads the active
weights once, plus the filled part of the KV cache. So the machine is measured once (a ~0.3 s
copy benchmark for bandwidth, a short single-core dot product for compute), cached in the cache
folder under a hardware signature, and measured again when the signature changes.

The prediction: seconds per token = bytes read on each device / that device's effective rate,
plus a per-token overhead expressed as byte-equivalents of work (each vocabulary row of the
output matmul and each layer's graph nodes cost some time however small the weights are).
The constants were calibrated against real llama.cpp decode of the 270M and the synthetic
Gemma 4 on the CPU (tests/e2e/test_speed_prediction.py checks ±30%).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.core.hardware.memory import KV_ELEMENT_BYTES, Estimate, ModelShape, Options, kv_cells

# llama.cpp decode reaches about this share of a plain copy's bandwidth (measured, see above).
CPU_BW_EFFICIENCY = 0.6
# One core dequantizes and dots Q4/Q8 weights at about this share of numpy's f32 dot rate.
CORE_EFFICIENCY = 0.45
# Per-token work that does not scale with weight bytes, in byte-equivalents at the CPU's rate.
ROW_BYTES = 420  # each output (vocabulary) row: dispatch and the logits write
LAYER_BYTES = 200_000  # each layer: graph nodes, thread sync
# A GPU backend without a measured figure is assumed to reach this (bytes/s): a modest dGPU.
GPU_DEFAULT_BW = {"gpu": 200e9, "igpu": 50e9}
GPU_BW_EFFICIENCY = 0.6
# Operations a GPU runs per offloaded layer in one decode step (norms, products, rope, attention,
# activations, residual adds, cache writes), each paying the device's dispatch cost.
GPU_OPS_PER_LAYER = 24
# Typical conversation length the decode prediction assumes filled in the KV cache.
TYPICAL_FILL = 2048
_SCHEMA = 4  # 2: GPUs timed with a ggml operation; 3: and an RMS norm; 4: and small products


@dataclass(frozen=True)
class GpuSpeed:
    """One GPU's decode rate in weight bytes/s: measured with the device's own matrix-vector
    product (gpu_timing), or, when `measured` is False, an assumed memory bandwidth."""

    name: str
    bandwidth: float
    measured: bool = False
    dispatch_s: float = 0.0  # measured seconds per graph operation beyond its bytes
    norm_s: float = 0.0  # measured seconds per RMS norm (a reduction; see gpu_timing)
    matvec_s: float = 0.0  # measured seconds per small matrix-vector product (see gpu_timing)


@dataclass(frozen=True)
class MachineSpeed:
    """Measured figures of this machine (bytes/s, FLOP/s of one core) and when they were taken."""

    signature: str
    bandwidth: float
    core_rate: float
    core_flops: float
    cpu_threads: int
    gpus: tuple[GpuSpeed, ...] = ()
    measured_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MachineSpeed:
        gpus = tuple(GpuSpeed(str(g["name"]), float(g["bandwidth"]), bool(g["measured"]),
                              float(g.get("dispatch_s", 0.0)), float(g.get("norm_s", 0.0)),
                              float(g.get("matvec_s", 0.0)))
                     for g in d.get("gpus", []))
        return cls(str(d["signature"]), float(d["bandwidth"]), float(d["core_rate"]),
                   float(d["core_flops"]), int(d["cpu_threads"]), gpus,
                   float(d.get("measured_at", 0.0)))

    def gpu_bandwidth(self) -> float:
        """The fastest GPU's bandwidth (the planner places layers on that one)."""
        return max((g.bandwidth for g in self.gpus), default=0.0)

    def gpu_decode_rate(self) -> float:
        """Weight bytes/s the fastest GPU reads while decoding (a measured rate is that already)."""
        return max((g.bandwidth * (1.0 if g.measured else GPU_BW_EFFICIENCY) for g in self.gpus),
                   default=0.0)


def hardware_signature(gpu_names: tuple[str, ...] = ()) -> str:
    """A short hash of what decides the speed: CPU model, core count, RAM size, GPUs."""
    from app.core.hardware.devices import ram_bytes

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = round(ram_bytes()[0] / 1024**3)
    text = f"{cpu}|{os.cpu_count()}|{ram_gib}|{'|'.join(sorted(gpu_names))}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure_bandwidth(seconds: float = 0.3, mib: int = 64,
                      clock: Callable[[], float] = time.perf_counter) -> float:
    """Best copy rate (read + write bytes per second) of a buffer larger than the caches."""
    import numpy as np

    src = np.ones(mib * 1024 * 1024 // 8)
    dst = np.ones_like(src)  # touched now: page faults must not be timed
    best = 0.0
    end = time.perf_counter() + seconds
    runs = 0
    # At least a few runs: a busy machine may stretch one copy past the time budget.
    while runs < 3 or time.perf_counter() < end:
        t = clock()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / max(clock() - t, 1e-9))
        runs += 1
    return best


def measure_core(seconds: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """(bytes/s, FLOP/s) of one core: an f32 dot product over a cache-sized vector."""
    import numpy as np

    a = np.ones(1 << 20, dtype=np.float32)
    b = np.ones_like(a)
    best = 0.0
    end = time.perf_counter() + seconds
    runs = 0
    while runs < 3 or time.perf_counter() < end:
        t = clock()
        float(np.dot(a, b))
        best = max(best, 2 * a.nbytes / max(clock() - t, 1e-9))
        runs += 1
    return best, best / 4  # two floats (8 bytes) give two FLOPs


def measure(gpus: tuple[tuple[str, str], ...] = (),
            cpu_threads: int | None = None) -> MachineSpeed:
    """Measure this machine now; `gpus` are (name, kind) of the devices llama.cpp can use.

    Each GPU is timed with a short ggml operation on the device (gpu_timing); one that cannot be
    timed is given an assumed bandwidth, and predictions say so.
    """
    from app.core.engine.llama_engine import default_threads
    from app.core.hardware.gpu_timing import time_gpus_in_subprocess

    bw = measure_bandwidth()
    rate, flops = measure_core()
    timed = time_gpus_in_subprocess() if gpus else {}
    gpu_speeds = tuple(
        GpuSpeed(n, timed[n].rate, True, timed[n].per_op, timed[n].norm_op, timed[n].matvec_op)
        if n in timed
        else GpuSpeed(n, GPU_DEFAULT_BW.get(k, GPU_DEFAULT_BW["gpu"])) for n, k in gpus)
    return MachineSpeed(hardware_signature(tuple(n for n, _ in gpus)), bw, rate,
                        flops, cpu_threads or default_threads(), gpu_speeds, time.time())


def cache_path() -> Path:
    from app.core.paths import cache_dir

    return cache_dir() / "machine_speed.json"


def machine_speed(gpus: tuple[tuple[str, str], ...] = (),
                  path: Path | None = None) -> MachineSpeed:
    """The cached figures if they belong to this hardware, else a fresh measurement (cached)."""
    path = path or cache_path()
    sig = hardware_signature(tuple(n for n, _ in gpus))
    known: dict[str, Any] = {}
    try:
        data = json.loads(path.read_text())
        if data.get("schema") == _SCHEMA:
            known = dict(data.get("machines", {}))
            if sig in known:
                return MachineSpeed.from_dict(known[sig])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        known = {}
    speed = measure(gpus)
    known[sig] = speed.to_dict()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"schema": _SCHEMA, "machines": known}))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs another 0.4 s next time
    return speed


def with_hypothetical_gpu(speed: MachineSpeed, name: str, kind: str = "gpu") -> MachineSpeed:
    """This machine's CPU figures plus an assumed GPU (for `--vram-gib` what-ifs)."""
    from dataclasses import replace

    return replace(speed, gpus=(GpuSpeed(name, GPU_DEFAULT_BW.get(kind, GPU_DEFAULT_BW["gpu"])),))


def _measured_path() -> Path:
    return cache_path().with_name("measured_speed.json")


def record_measured(model_path: str, decode_tok_s: float) -> None:
    """Remember the decode speed a model really reached here (shown beside the prediction)."""
    path = _measured_path()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        data = {}
    data[Path(model_path).name] = round(float(decode_tok_s), 2)
    try:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


def record_answer_speed(model_path: str | None, stats: dict[str, Any]) -> None:
    """After an answer: keep its decode speed for the model (a no-op without a figure)."""
    tok_s = stats.get("decode_tok_s")
    if model_path and isinstance(tok_s, int | float) and tok_s > 0 \
            and int(stats.get("completion_tokens") or 0) >= 8:  # a few tokens say little
        record_measured(model_path, float(tok_s))


def measured_tok_s(model_filename: str) -> float | None:
    """The last decode speed recorded for this model file, if it ever answered here."""
    try:
        value = json.loads(_measured_path().read_text()).get(Path(model_filename).name)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def speed_label(predicted: float | None, measured: float | None = None) -> str:
    """'≈ 14 tok/s here' (and ' · measured 12.3' once the model answered)."""
    if predicted is None:
        return ""
    text = f"≈ {predicted:.0f} tok/s here" if predicted >= 2 else f"≈ {predicted:.1f} tok/s here"
    return text + (f" · measured {measured:.1f}" if measured is not None else "")


@dataclass(frozen=True)
class Prediction:
    """Predicted speeds and the bytes each token reads per place."""

    decode_tok_s: float
    prompt_tok_s: float
    cpu_bytes: int
    gpu_bytes: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def active_layer_bytes(shape: ModelShape) -> list[int]:
    """Bytes of each layer that one token reads: for MoE only the experts it routes to."""
    out = list(shape.layer_bytes)
    if shape.n_expert and shape.layer_expert_bytes:
        keep = shape.n_expert_used / shape.n_expert
        for il, eb in enumerate(shape.layer_expert_bytes):
            out[il] -= int(eb * (1 - keep))
    return out


def kv_read_bytes(shape: ModelShape, fill: int, kv_type: str = "f16") -> list[int]:
    """KV bytes each layer reads for one token with `fill` cells in use."""
    per = KV_ELEMENT_BYTES.get(kv_type, 2.0)
    out = []
    for il in range(shape.n_layer):
        if il >= shape.n_layer_kv:
            out.append(0)
            continue
        cells = min(fill, shape.n_swa) if shape.swa[il] and shape.n_swa > 0 else fill
        width = shape.head_k[il] * shape.n_head_kv[il] + shape.head_v[il] * shape.n_head_kv[il]
        out.append(int(cells * width * per))
    return out


def predict(shape: ModelShape, speed: MachineSpeed, n_ctx: int = 8192, gpu_layers: int = 0,
            threads: int | None = None, kv_type: str = "f16",
            expert_cpu_layers: int = 0, fill: int | None = None,
            output_on_gpu: bool | None = None) -> Prediction:
    """Predicted decode and prompt tok/s for `shape` placed with `gpu_layers` (0..n_layer+1).

    `expert_cpu_layers`: MoE layers (the first K) whose expert tensors stay on the CPU.
    `output_on_gpu`: False when the output weight stays in host memory although the output layer
    is offloaded (a device whose tensors are limited, see vulkan_limits); None: with the layer.
    """
    threads = threads or speed.cpu_threads
    n = shape.n_layer
    g = max(0, min(gpu_layers, n + 1)) if speed.gpus else 0
    first_gpu = n + 1 - g
    fill = min(fill or TYPICAL_FILL, kv_cells(shape, n_ctx, Options())[0], n_ctx)
    layers = active_layer_bytes(shape)
    kv = kv_read_bytes(shape, fill, kv_type)
    cpu = gpu = 0
    keep = shape.n_expert_used / shape.n_expert if shape.n_expert else 1.0
    for il in range(n):
        b = layers[il] + kv[il]
        if il >= first_gpu:
            if il < expert_cpu_layers and shape.layer_expert_bytes:
                moved = int(shape.layer_expert_bytes[il] * keep)
                gpu += b - moved
                cpu += moved
            else:
                gpu += b
        else:
            cpu += b
    out = shape.output_bytes + shape.output_tied_bytes
    out_gpu = g >= 1 if output_on_gpu is None else (g >= 1 and output_on_gpu)
    if out_gpu:
        gpu += out
    else:
        cpu += out
    cpu_rate = min(CPU_BW_EFFICIENCY * speed.bandwidth, threads * CORE_EFFICIENCY * speed.core_rate)
    gpu_rate = speed.gpu_decode_rate()
    # The output layer's per-row work runs where the output layer is.
    rows = shape.n_vocab * ROW_BYTES
    seconds = (cpu + (0 if out_gpu else rows) + (first_gpu if g else n) * LAYER_BYTES) / cpu_rate
    notes: list[str] = []
    if gpu:
        # A measured rate comes from whole matrix-vector products, row work included.
        measured = any(x.measured for x in speed.gpus)
        seconds += (gpu + (rows if out_gpu and not measured else 0)) / gpu_rate
        dispatch = max((x.dispatch_s for x in speed.gpus), default=0.0)
        offloaded = g - (1 if g > n else 0)
        seconds += offloaded * GPU_OPS_PER_LAYER * dispatch
        # Norms cost more than other small operations on some devices (lavapipe: about 10x), and
        # so does each layer's attention, whose softmax is a reduction too (lavapipe's profile:
        # about half a norm).
        norm = max((x.norm_s for x in speed.gpus), default=0.0)
        if norm > dispatch and shape.n_norms:
            norms = (shape.n_norms + n / 2) * offloaded / n + (1 if out_gpu else 0)
            seconds += norms * (norm - dispatch)
        # So do the matrix-vector products' row reductions (lavapipe: 2-8x); a large product's
        # time is its bytes at the measured rate, which was taken net of this fixed part.
        matvec = max((x.matvec_s for x in speed.gpus), default=0.0)
        if matvec > dispatch:
            products = shape.n_matmuls * offloaded / n + (1 if out_gpu else 0)
            seconds += products * (matvec - dispatch)
        if not measured:
            notes.append("GPU bandwidth assumed, not measured")
        if g <= n:
            overhead_split = 0.0005  # a partly offloaded model hands the activations across
            seconds += overhead_split
    # Prompt: about 2 FLOPs per weight at ~5 bits per weight, spread over the threads.
    params = (sum(layers) + out) * 8 / 5
    cpu_share = cpu / max(cpu + gpu, 1)
    flops = threads * speed.core_flops * (cpu_share or 0.0) + (
        (1 - cpu_share) * speed.gpu_decode_rate() * 33 if gpu else 0.0)
    prompt = flops / max(2 * params, 1)
    return Prediction(1.0 / seconds, prompt, cpu, gpu, tuple(notes))


def predict_for_estimate(shape: ModelShape, est: Estimate, speed: MachineSpeed,
                         kv_type: str = "f16", threads: int | None = None) -> Prediction:
    """The prediction for a planned placement (the planner's estimate)."""
    return predict(shape, speed, est.n_ctx, est.gpu_layers, threads, kv_type,
                   output_on_gpu=est.output_on_gpu)
