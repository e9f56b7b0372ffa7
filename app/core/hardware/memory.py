"""How much memory llama.cpp will allocate for a model at a context size and GPU layer count.

The figures follow what the llama.cpp vendored in llama-cpp-python 0.3.36 does:

- weights: the repeating layers `il >= n_layer + 1 - n_gpu_layers` and the output layer (when
  n_gpu_layers >= 1) live on the GPU; the token and per-layer embeddings stay on the CPU. A tied
  output reuses the embedding on the CPU but is copied to the GPU when the output is offloaded.
- KV cache: one K and one V tensor per layer that owns its cache (the last `shared_kv_layers`
  reuse earlier ones), f16, `n_embd_head(il) * n_head_kv(il)` wide. Global layers hold the
  context (padded to 256); sliding-window layers hold `pad256(min(ctx, n_swa + n_ubatch))`
  cells unless swa_full. Without flash attention V is transposed and padded to the widest layer.
- compute buffers: modelled from the worst-case graph llama.cpp reserves (n_ubatch tokens, all
  outputs) and calibrated against its own log lines (tests/e2e/test_planner_vs_llama*.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.hardware.gguf_info import GGUFInfo

MIB = 1024**2
F16 = 2
# Bytes per KV element by cache type (q8_0 packs 32 values with an f16 scale in 34 bytes).
KV_ELEMENT_BYTES = {"f16": 2.0, "q8_0": 34 / 32}
KV_TYPES = tuple(KV_ELEMENT_BYTES)


def pad(value: int, to: int) -> int:
    return -(-value // to) * to


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs about a model: per-layer attention geometry and weight bytes."""

    name: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    head_k: tuple[int, ...]
    head_v: tuple[int, ...]
    swa: tuple[bool, ...]
    n_swa: int
    shared_kv_layers: int
    n_ff_max: int
    n_embd_per_layer: int
    n_expert_used: int
    n_ff_expert: int
    layer_bytes: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    output_tied_bytes: int
    projector_bytes: int = 0
    # Bytes of each layer that the CPU backend copies into a repacked (interleaved) buffer on
    # top of the file mapping: Q4_0, Q4_K and IQ4_NL matmul weights on AVX2/NEON machines.
    layer_repack: tuple[int, ...] = ()
    max_context: int = 0
    file_bytes: int = 0
    approximate: bool = False
    # MoE: expert count and the bytes of each layer's expert tensors (a token reads only
    # n_expert_used of n_expert of them).
    n_expert: int = 0
    layer_expert_bytes: tuple[int, ...] = ()
    # RMS norms one token runs in the layers: one per norm weight, plus Gemma 4's unweighted
    # value norm in each layer that computes its own KV (0: unknown).
    n_norms: int = 0
    # Weight matrices a token multiplies in the layers (matrix-vector products; 0: unknown).
    n_matmuls: int = 0

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    @property
    def n_layer_kv(self) -> int:
        return self.n_layer - self.shared_kv_layers

    @classmethod
    def from_gguf(cls, info: GGUFInfo, projector: GGUFInfo | None = None,
                  file_bytes: int = 0) -> ModelShape:
        n_layer = info.block_count
        swa = tuple(info.swa_layers)
        kl, vl = info.key_length, info.value_length
        kls, vls = info.key_length_swa, info.value_length_swa
        tied = info.tensor_bytes("token_embd.weight") if not any(
            t.name == "output.weight" for t in info.tensors) else 0
        exp = info.arch_key("expert_feed_forward_length", 0)
        return cls(
            name=info.name or info.architecture,
            n_layer=n_layer, n_embd=info.embedding_length, n_vocab=info.vocab_size,
            n_head=tuple(info.head_count), n_head_kv=tuple(info.head_count_kv),
            head_k=tuple(kls if s else kl for s in swa), head_v=tuple(vls if s else vl for s in swa),
            swa=swa, n_swa=info.sliding_window, shared_kv_layers=info.shared_kv_layers,
            n_ff_max=max(info.feed_forward_length or [0]),
            n_embd_per_layer=info.embedding_length_per_layer,
            n_expert_used=info.expert_used_count,
            n_ff_expert=int(max(exp) if isinstance(exp, list) else exp or 0),
            layer_bytes=tuple(info.layer_bytes()), input_bytes=info.input_bytes,
            output_bytes=info.output_bytes - tied, output_tied_bytes=tied,
            projector_bytes=projector.total_tensor_bytes if projector else 0,
            layer_repack=tuple(_repack_bytes(info)),
            max_context=info.context_length,
            file_bytes=file_bytes or info.header_bytes + info.total_tensor_bytes,
            n_expert=info.expert_count,
            layer_expert_bytes=tuple(_expert_bytes(info)) if info.expert_count else (),
            n_norms=sum(1 for t in info.tensors if t.layer is not None and t.name.endswith(
                "norm.weight")) + (n_layer - info.shared_kv_layers
                                   if info.architecture == "gemma4" else 0),
            n_matmuls=sum(1 for t in info.tensors if t.layer is not None and len(t.shape) >= 2
                          and t.name.endswith(".weight") and not t.name.endswith("norm.weight")),
        )

    @classmethod
    def from_hparams(cls, name: str, hp: dict[str, int | float | bool], quant_bits: float,
                     file_bytes: int, projector_bytes: int, max_context: int,
                     quant: str = "") -> ModelShape:
        """An approximate shape from catalog hyper-parameters and the file size (before download).

        Embedding and per-layer-embedding bytes are estimated from the quant's bits per weight;
        the rest of the file is spread evenly over the layers.
        """
        n_layer, n_embd, vocab = int(hp["n_layer"]), int(hp["n_embd"]), int(hp["vocab"])
        every = int(hp.get("global_every", 0))
        swa = tuple(every > 0 and (il % every) < every - 1 for il in range(n_layer))
        # Q4_K_M files keep embeddings at Q6_K; other quants at their own width.
        embd_bits = max(quant_bits, 6.56) if quant_bits < 6 else quant_bits
        token_embd = int(vocab * n_embd * embd_bits / 8)
        ple = int(vocab * n_layer * int(hp.get("per_layer_embd", 0)) * embd_bits / 8)
        rest = max(file_bytes - token_embd - ple - 8 * MIB, 0)
        hd, hdg = int(hp["head_dim"]), int(hp["head_dim_global"])
        n_expert = int(hp.get("n_expert", 0))
        kv, kvg = int(hp["n_head_kv"]), int(hp["n_head_kv_global"])
        return cls(
            name=name, n_layer=n_layer, n_embd=n_embd, n_vocab=vocab,
            n_head=(int(hp["n_head"]),) * n_layer,
            n_head_kv=tuple(kv if s else kvg for s in swa),
            head_k=tuple(hd if s else hdg for s in swa), head_v=tuple(hd if s else hdg for s in swa),
            swa=swa, n_swa=int(hp.get("sliding_window", 0)),
            shared_kv_layers=int(hp.get("shared_kv_layers", 0)),
            n_ff_max=int(hp.get("n_ff", 4 * n_embd)) * (2 if hp.get("shared_kv_layers") else 1),
            n_embd_per_layer=int(hp.get("per_layer_embd", 0)),
            n_expert_used=int(hp.get("n_expert_used", 0)),
            n_ff_expert=int(hp.get("n_ff_expert", 0)),
            layer_bytes=(rest // n_layer,) * n_layer, input_bytes=token_embd + ple,
            layer_repack=(int(rest // n_layer * _REPACK_SHARE.get(quant, 0.0)),) * n_layer,
            output_bytes=n_embd * 4, output_tied_bytes=token_embd,
            projector_bytes=projector_bytes, max_context=max_context, file_bytes=file_bytes,
            approximate=True, n_expert=n_expert,
            layer_expert_bytes=(min(rest // n_layer, int(
                3 * n_embd * int(hp.get("n_ff_expert", 0)) * n_expert * quant_bits / 8)),
            ) * n_layer if n_expert else (),
            # Gemma 4: seven weighted norms a layer (with the per-layer input's), plus the value
            # norm of each layer with its own KV.
            n_norms=7 * n_layer + n_layer - int(hp.get("shared_kv_layers", 0)),
            # Attention's four and the feed-forward's three, plus the per-layer input's two.
            n_matmuls=(7 + (2 if hp.get("per_layer_embd") else 0)) * n_layer,
        )


_REPACKED_TYPES = {2, 12, 20}  # Q4_0, Q4_K, IQ4_NL (ggml-cpu/repack.cpp)
# Share of layer bytes held by repacked types, by quant, before a header is read.
_REPACK_SHARE = {"Q4_0": 1.0, "IQ4_NL": 1.0, "Q4_K_M": 0.6, "Q4_K_S": 0.9, "Q4_K_XL": 0.6,
                 "UD-Q4_K_XL": 0.6, "Q3_K_M": 0.3, "Q5_K_M": 0.0}


def _expert_bytes(info: GGUFInfo) -> list[int]:
    out = [0] * info.block_count
    for t in info.tensors:
        if t.layer is not None and 0 <= t.layer < len(out) and "_exps" in t.name:
            out[t.layer] += t.nbytes
    return out


def _repack_bytes(info: GGUFInfo) -> list[int]:
    out = [0] * info.block_count
    for t in info.tensors:
        il = t.layer
        if (il is not None and 0 <= il < len(out) and t.ggml_type in _REPACKED_TYPES
                and len(t.shape) >= 2 and t.shape[1] % 8 == 0):
            out[il] += t.nbytes
    return out


@dataclass(frozen=True)
class Options:
    """The context parameters the engine must pass for the estimate to hold."""

    n_ubatch: int = 512
    n_batch: int = 512
    flash_attn: bool = True
    swa_full: bool = False
    offload_kqv: bool = True
    kv_type: str = "f16"  # or "q8_0": llama.cpp's type_k/type_v, about half the bytes


@dataclass(frozen=True)
class Estimate:
    """Bytes per place; `gpu_total`/`cpu_total` are what must be free (margins excluded)."""

    n_ctx: int
    gpu_layers: int  # 0..n_layer+1, llama.cpp's n_gpu_layers (n_layer+1 = everything)
    gpu_weights: int
    cpu_weights: int
    gpu_kv: int
    cpu_kv: int
    gpu_compute: int
    cpu_compute: int
    output_buffer: int
    projector: int
    projector_on_gpu: bool
    output_on_gpu: bool = False  # the output weight (llama.cpp's "output layer") in GPU memory

    @property
    def kv(self) -> int:
        return self.gpu_kv + self.cpu_kv

    @property
    def gpu_total(self) -> int:
        return (self.gpu_weights + self.gpu_kv + self.gpu_compute
                + (self.projector if self.projector_on_gpu else 0))

    @property
    def cpu_total(self) -> int:
        return (self.cpu_weights + self.cpu_kv + self.cpu_compute + self.output_buffer
                + (0 if self.projector_on_gpu else self.projector))

    @property
    def total(self) -> int:
        return self.gpu_total + self.cpu_total


def kv_cells(shape: ModelShape, n_ctx: int, opts: Options) -> tuple[int, int]:
    """(cells of a global layer, cells of a sliding-window layer) as llama.cpp sizes them."""
    ctx = pad(max(n_ctx, 1), 256)
    if shape.n_swa <= 0 or opts.swa_full:
        return ctx, ctx
    return ctx, pad(min(ctx, shape.n_swa + opts.n_ubatch), 256)


def kv_bytes_per_layer(shape: ModelShape, n_ctx: int, opts: Options) -> list[int]:
    """K+V bytes of each layer (0 for layers that reuse another layer's cache)."""
    full, swa_cells = kv_cells(shape, n_ctx, opts)
    v_max = max((shape.head_v[il] * shape.n_head_kv[il] for il in range(shape.n_layer_kv)),
                default=0)
    out = []
    for il in range(shape.n_layer):
        if il >= shape.n_layer_kv:
            out.append(0)
            continue
        cells = swa_cells if shape.swa[il] else full
        k = shape.head_k[il] * shape.n_head_kv[il]
        v = shape.head_v[il] * shape.n_head_kv[il] if opts.flash_attn else v_max
        out.append(int(cells * (k + v) * KV_ELEMENT_BYTES.get(opts.kv_type, F16)))
    return out


def compute_bytes(shape: ModelShape, n_ctx: int, opts: Options, with_output: bool = True) -> int:
    """Graph buffer for one ubatch of n_ubatch tokens, all of them outputs (llama.cpp's reserve).

    Calibrated on the CPU backend against the 270M and the synthetic Gemma 4: the allocator
    reuses memory between stages, so the buffer is the larger of the output stage (the
    logits, n_vocab floats per token) and a layer stage (without flash attention this holds the
    KQ matrix, n_head x n_kv floats per token), plus the inputs that live through the whole
    graph: the attention masks (f16 with flash attention, f32 without; one per cache) and the
    per-layer-embedding inputs.
    """
    nub = min(opts.n_ubatch, pad(n_ctx, 256))
    full, swa_cells = kv_cells(shape, n_ctx, opts)
    out_stage = nub * (shape.n_vocab + 2 * shape.n_embd) * 4 if with_output else 0
    layer_stage = nub * (4 * shape.n_embd + 2 * shape.n_ff_max
                         + 2 * shape.n_ff_expert * shape.n_expert_used) * 4
    if not opts.flash_attn:
        widest = max((shape.n_head[il] * (swa_cells if shape.swa[il] else full)
                      for il in range(shape.n_layer)), default=0)
        layer_stage += nub * widest * 4
    mask_cells = full + (swa_cells if any(shape.swa) else 0)
    masks = nub * mask_cells * (F16 if opts.flash_attn else 4)
    inputs = nub * (shape.n_embd_per_layer * shape.n_layer + shape.n_embd) * 4
    return pad(max(out_stage, layer_stage) + masks + inputs, MIB)


def estimate(shape: ModelShape, n_ctx: int, gpu_layers: int, opts: Options | None = None,
             has_gpu: bool = True, expert_cpu_layers: int = 0, gpu_max_tensor: int = 0) -> Estimate:
    """Memory llama.cpp allocates for `shape` at `n_ctx` with `gpu_layers` (0..n_layer+1).

    `expert_cpu_layers`: MoE layers 0..K-1 whose expert tensors are overridden to host memory.
    `gpu_max_tensor`: the largest tensor the GPU's kernels may read (0: no limit). A larger
    output weight stays in host memory and the logits are computed there (see vulkan_limits).
    """
    opts = opts or Options()
    n = shape.n_layer
    g = max(0, min(gpu_layers, n + 1)) if has_gpu else 0
    first_gpu = n + 1 - g
    on_gpu = [il >= first_gpu for il in range(n)]
    output_gpu = g >= 1
    gpu_w = sum(b for b, gpu in zip(shape.layer_bytes, on_gpu, strict=True) if gpu)
    cpu_w = sum(shape.layer_bytes) - gpu_w + shape.input_bytes
    cpu_w += sum(r for r, gpu in zip(shape.layer_repack, on_gpu, strict=False) if not gpu)
    for il, eb in enumerate(shape.layer_expert_bytes[:expert_cpu_layers]):
        if on_gpu[il]:
            gpu_w -= eb
            cpu_w += eb
    nub = min(opts.n_ubatch, pad(n_ctx, 256))
    out_weight = shape.output_bytes + shape.output_tied_bytes
    # llama.cpp places a weight on a device only if the device takes its product with a
    # 512-token batch: the weight and that product's result must both fit the device's limit.
    output_on_gpu = output_gpu and not (
        gpu_max_tensor and max(out_weight, 512 * shape.n_vocab * 4) > gpu_max_tensor)
    if output_on_gpu:
        gpu_w += out_weight
    else:
        cpu_w += shape.output_bytes  # the tied output is the CPU embedding itself
    kv = kv_bytes_per_layer(shape, n_ctx, opts)
    kv_on_gpu = [gpu and opts.offload_kqv for gpu in on_gpu]
    gpu_kv = sum(b for b, gpu in zip(kv, kv_on_gpu, strict=True) if gpu)
    cpu_kv = sum(kv) - gpu_kv
    compute = compute_bytes(shape, n_ctx, opts)
    if g > 0:
        # The GPU runs the output layer, so it holds the big graph; the host keeps the inputs.
        host = opts.n_ubatch * (shape.n_embd * 4 + shape.n_embd_per_layer * n) * 4
        gpu_c, cpu_c = compute, pad(host, MIB)
        if not output_on_gpu:  # the output stage runs on the CPU: its buffer moves to the host
            gpu_c = compute_bytes(shape, n_ctx, opts, with_output=False)
            cpu_c = pad(max(host, nub * (shape.n_vocab + 2 * shape.n_embd) * 4), MIB)
        if g <= n:
            # Partial offload: llama.cpp runs big batches of the host layers' matrix products
            # on the GPU too, copying one weight at a time into the GPU's compute buffer.
            gpu_c += max((b for b, gpu in zip(shape.layer_bytes, on_gpu, strict=True) if not gpu),
                         default=0)
    else:
        gpu_c, cpu_c = 0, compute
    output_buffer = pad(shape.n_vocab * 4, MIB)
    return Estimate(
        n_ctx=n_ctx, gpu_layers=g, gpu_weights=gpu_w, cpu_weights=cpu_w, gpu_kv=gpu_kv,
        cpu_kv=cpu_kv, gpu_compute=gpu_c, cpu_compute=cpu_c, output_buffer=output_buffer,
        projector=shape.projector_bytes, projector_on_gpu=g > 0, output_on_gpu=output_on_gpu,
    )
