"""Read a GGUF header (metadata and tensor list) from any seekable binary file-like.

Reading stops at the end of the tensor infos, so the same code works on a local file and on a
remote file read through HTTP range requests: only the header (a few MB) is ever fetched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.core.hardware.gguf_tables import FILE_TYPE_NAMES, GGML_TYPE_NAMES, GGML_TYPE_SIZES

GGUF_MAGIC = b"GGUF"

# Arrays longer than this are skipped (the tokenizer vocab); only their length is kept.
_MAX_KEPT_ARRAY = 4096
_CHUNK = 1 << 20


class GGUFError(ValueError):
    """The file is not a readable GGUF; the message says what is wrong in plain words."""


def tensor_nbytes(ggml_type: int, shape: tuple[int, ...]) -> int:
    """Bytes a tensor of this type and shape occupies in the file (and in memory)."""
    block, size = GGML_TYPE_SIZES.get(ggml_type, (1, 4))
    count = 1
    for dim in shape:
        count *= dim
    return (count // block) * size


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header describes it (the data is never read)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.ggml_type, self.shape)

    @property
    def layer(self) -> int | None:
        """Block index for `blk.N.*` tensors, None for the others (embeddings, output, norms)."""
        if not self.name.startswith("blk."):
            return None
        part = self.name.split(".", 2)[1]
        return int(part) if part.isdigit() else None


@dataclass
class GGUFInfo:
    """Metadata and tensor list of one GGUF file, with the lookups the planner needs."""

    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    array_lengths: dict[str, int] = field(default_factory=dict)
    header_bytes: int = 0

    # -- raw access -------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    # -- identity ---------------------------------------------------------------------------
    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", ""))

    @property
    def is_projector(self) -> bool:
        return self.architecture == "clip"

    @property
    def file_type(self) -> str:
        ftype = self.metadata.get("general.file_type")
        if isinstance(ftype, int) and ftype in FILE_TYPE_NAMES:
            return FILE_TYPE_NAMES[ftype]
        return self.dominant_tensor_type

    @property
    def dominant_tensor_type(self) -> str:
        """The ggml type holding most bytes (a fallback when general.file_type is absent)."""
        by_type: dict[int, int] = {}
        for t in self.tensors:
            by_type[t.ggml_type] = by_type.get(t.ggml_type, 0) + t.nbytes
        if not by_type:
            return "unknown"
        top = max(by_type, key=lambda k: by_type[k])
        return GGML_TYPE_NAMES.get(top, f"type{top}")

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get("tokenizer.chat_template"))

    # -- hyper-parameters -------------------------------------------------------------------
    @property
    def block_count(self) -> int:
        return int(self.arch_key("block_count", 0))

    @property
    def context_length(self) -> int:
        return int(self.arch_key("context_length", 0))

    @property
    def embedding_length(self) -> int:
        return int(self.arch_key("embedding_length", 0))

    @property
    def vocab_size(self) -> int:
        return self.array_lengths.get("tokenizer.ggml.tokens", 0) or int(
            self.arch_key("vocab_size", 0)
        )

    def _per_layer(self, suffix: str, default: int) -> list[int]:
        value = self.arch_key(suffix, default)
        if isinstance(value, list):
            return [int(v) for v in value]
        return [int(value)] * self.block_count

    @property
    def head_count(self) -> list[int]:
        return self._per_layer("attention.head_count", 0)

    @property
    def head_count_kv(self) -> list[int]:
        """KV heads per layer (llama.cpp defaults them to the query heads)."""
        if f"{self.architecture}.attention.head_count_kv" not in self.metadata:
            return self.head_count
        return self._per_layer("attention.head_count_kv", 0)

    @property
    def key_length(self) -> int:
        """Head size of K on full-attention layers (llama.cpp: n_embd / n_head when absent)."""
        heads = self.head_count
        default = self.embedding_length // heads[0] if heads and heads[0] else 0
        return int(self.arch_key("attention.key_length", default))

    @property
    def value_length(self) -> int:
        return int(self.arch_key("attention.value_length", self.key_length))

    @property
    def key_length_swa(self) -> int:
        return int(self.arch_key("attention.key_length_swa", self.key_length))

    @property
    def value_length_swa(self) -> int:
        return int(self.arch_key("attention.value_length_swa", self.value_length))

    @property
    def sliding_window(self) -> int:
        return int(self.arch_key("attention.sliding_window", 0) or 0)

    @property
    def swa_layers(self) -> list[bool]:
        """Which layers use the sliding window, as llama.cpp decides it.

        An explicit bool array wins; otherwise Gemma 2/3 use a period (5 local + 1 global for
        Gemma 3, 1 + 1 for Gemma 2) where the last layer of each period is global.
        """
        n_layer = self.block_count
        if self.sliding_window <= 0:
            return [False] * n_layer
        pattern = self.arch_key("attention.sliding_window_pattern")
        if isinstance(pattern, list):
            return [bool(v) for v in pattern][:n_layer]
        default_period = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4}.get(
            self.architecture, 0
        )
        period = int(pattern) if isinstance(pattern, int) else default_period
        if period <= 0:
            return [True] * n_layer
        return [(il % period) < (period - 1) for il in range(n_layer)]

    @property
    def shared_kv_layers(self) -> int:
        """How many final layers reuse the KV cache of earlier ones (Gemma 3n / Gemma 4)."""
        return int(self.arch_key("attention.shared_kv_layers", 0) or 0)

    @property
    def expert_count(self) -> int:
        return int(self.arch_key("expert_count", 0) or 0)

    @property
    def expert_used_count(self) -> int:
        return int(self.arch_key("expert_used_count", 0) or 0)

    @property
    def embedding_length_per_layer(self) -> int:
        return int(self.arch_key("embedding_length_per_layer_input", 0) or 0)

    @property
    def feed_forward_length(self) -> list[int]:
        return self._per_layer("feed_forward_length", 0)

    # -- bytes ------------------------------------------------------------------------------
    @property
    def total_tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def layer_bytes(self) -> list[int]:
        """Weight bytes of each repeating block `blk.N.*`."""
        out = [0] * self.block_count
        for t in self.tensors:
            il = t.layer
            if il is not None and 0 <= il < len(out):
                out[il] += t.nbytes
        return out

    def tensor_bytes(self, name: str) -> int:
        for t in self.tensors:
            if t.name == name:
                return t.nbytes
        return 0

    @property
    def input_bytes(self) -> int:
        """Tensors llama.cpp keeps on the CPU as the input layer (token and per-layer embeddings)."""
        return sum(
            t.nbytes for t in self.tensors
            if t.layer is None and t.name.startswith(("token_embd.", "per_layer_token_embd."))
        )

    @property
    def output_bytes(self) -> int:
        """Output-layer tensors; a tied embedding is duplicated there by llama.cpp."""
        own = sum(
            t.nbytes for t in self.tensors
            if t.layer is None and not t.name.startswith(("token_embd.", "per_layer_token_embd."))
        )
        if not any(t.name == "output.weight" for t in self.tensors):
            own += self.tensor_bytes("token_embd.weight")
        return own

    # -- projector --------------------------------------------------------------------------
    @property
    def projector_types(self) -> set[str]:
        kinds = set()
        for key in ("clip.projector_type", "clip.vision.projector_type", "clip.audio.projector_type"):
            value = self.metadata.get(key)
            if value:
                kinds.add(str(value))
        return kinds

    @property
    def projector_dims(self) -> set[int]:
        dims = set()
        for key in ("clip.vision.projection_dim", "clip.audio.projection_dim"):
            value = self.metadata.get(key)
            if isinstance(value, int) and value > 0:
                dims.add(value)
        return dims

    @property
    def has_vision(self) -> bool:
        return bool(self.metadata.get("clip.has_vision_encoder"))

    @property
    def has_audio(self) -> bool:
        return bool(self.metadata.get("clip.has_audio_encoder"))


class _Reader:
    """Buffered sequential reader over a file-like; counts the bytes consumed."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._f = fileobj
        self._buf = b""
        self._pos = 0
        self.consumed = 0

    def read(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            chunk = self._f.read(max(_CHUNK, n))
            if not chunk:
                raise GGUFError("The file ends inside its header: it is truncated or not a GGUF.")
            self._buf = self._buf[self._pos:] + chunk
            self._pos = 0
        out = self._buf[self._pos:self._pos + n]
        self._pos += n
        self.consumed += n
        return out

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.read(size))[0]

    def string(self) -> str:
        length = self.unpack("Q")
        if length > 1 << 30:
            raise GGUFError("A header string is impossibly long: the file is damaged.")
        return self.read(length).decode("utf-8", errors="replace")


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def _read_value(r: _Reader, vtype: int, key: str, lengths: dict[str, int]) -> Any:
    if vtype in _SCALARS:
        return r.unpack(_SCALARS[vtype])
    if vtype == 8:
        return r.string()
    if vtype == 9:
        etype = r.unpack("I")
        count = r.unpack("Q")
        lengths[key] = count
        if etype in _SCALARS:
            size = struct.calcsize(_SCALARS[etype])
            raw = r.read(size * count)
            if count > _MAX_KEPT_ARRAY:
                return None
            return list(struct.unpack(f"<{count}{_SCALARS[etype]}", raw))
        items = [_read_value(r, etype, key, {}) for _ in range(count)]
        return items if count <= _MAX_KEPT_ARRAY else None
    raise GGUFError(f"Unknown value type {vtype} for '{key}': the file is damaged or too new.")


def read_gguf(fileobj: IO[bytes]) -> GGUFInfo:
    """Parse the header of a GGUF from a binary file-like positioned anywhere (seeks to 0)."""
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    r = _Reader(fileobj)
    try:
        magic = r.read(4)
    except GGUFError:
        raise GGUFError("The file is empty or too short to be a GGUF model.") from None
    if magic != GGUF_MAGIC:
        raise GGUFError("This is not a GGUF file (it does not start with 'GGUF').")
    version = r.unpack("I")
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not supported (2 and 3 are).")
    n_tensors = r.unpack("Q")
    n_kv = r.unpack("Q")
    if n_tensors > 1_000_000 or n_kv > 1_000_000:
        raise GGUFError("The GGUF header counts are impossible: the file is damaged.")
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.unpack("I")
        value = _read_value(r, vtype, key, lengths)
        if value is not None:
            metadata[key] = value
    tensors: list[TensorInfo] = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("I")
        if n_dims > 8:
            raise GGUFError(f"Tensor '{name}' has {n_dims} dimensions: the file is damaged.")
        shape = tuple(r.unpack("Q") for _ in range(n_dims))
        ggml_type = r.unpack("I")
        offset = r.unpack("Q")
        tensors.append(TensorInfo(name, shape, ggml_type, offset))
    alignment = int(metadata.get("general.alignment", 32)) or 32
    header = -(-r.consumed // alignment) * alignment
    return GGUFInfo(version, metadata, tensors, lengths, header)


def read_gguf_path(path: str | Path) -> GGUFInfo:
    """Parse the header of a local GGUF file."""
    with open(path, "rb") as f:
        return read_gguf(f)
