"""What the engine takes and gives: sampling settings, generation stats, model info, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class EngineError(Exception):
    """An error the user can act on; `kind` is load | context | input | internal."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class SamplingParams:
    """Sampler settings for one generation (Gemma's recommended defaults)."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    max_tokens: int = 4096
    seed: int | None = None
    grammar: str | None = None

    def recommended(self) -> dict[str, float | int]:
        """The sampler values Google recommends for Gemma, as the settings and presets use them."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "min_p": self.min_p, "repeat_penalty": self.repeat_penalty}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


@dataclass
class GenerationStats:
    """What one generation cost; sent to the GUI with the `done` event."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    decode_tok_s: float = 0.0
    n_past: int = 0
    n_ctx: int = 0
    stopped: bool = False
    finish_reason: str = "stop"
    # llama.cpp's own count: {"device": "Vulkan0", "layers": n, "of": total}; {} before it is known.
    offload: dict[str, Any] = field(default_factory=dict)
    cpu_variant: str = ""
    # Mean time per token the host spent outside llama_decode and the sampler (piece text,
    # splitting into batches, the pipe write): the app's own cost on the hot path.
    overhead_us: float = 0.0


@dataclass
class Reply:
    """One generation as a client sees it: the text streamed so far and, once done, its stats.

    This is the one place the streamed text lives; the stats never carry it.
    """

    id: int
    thinking: str = ""
    answer: str = ""
    tool_calls: str = ""  # whole <|tool_call>…<tool_call|> blocks, as the model wrote them
    stats: GenerationStats | None = None

    def add(self, kind: str, text: str) -> None:
        if kind == "thinking":
            self.thinking += text
        elif kind == "tool_call":
            self.tool_calls += text
        else:
            self.answer += text


@dataclass
class Checkpoint:
    n_tokens: int
    pos_min: int
    data: bytes


@dataclass
class ModelInfo:
    """What the GUI shows about a loaded model."""

    path: str
    name: str
    arch: str
    n_ctx: int
    n_ctx_train: int
    n_gpu_layers: int
    n_layers: int
    size_bytes: int
    has_template: bool
    supports_vision: bool = False
    supports_audio: bool = False
    load_seconds: float = 0.0
    memory: dict[str, int] = field(default_factory=dict)
    mmproj: str | None = None  # the projector loaded with it (what a reload must bring back)
    projector_device: str = ""  # where libmtmd runs it ("CPU", "Vulkan0", …)
    n_threads: int = 0
    kv_type: str = "f16"


class Stopped(Exception):
    """The user pressed Stop (raised out of decode loops, never leaves the engine)."""
