"""Typed messages between the engine client and the engine host, both directions.

Every request that expects an answer carries an `id` chosen by the client, and every event that
answers it names that id, so several requests can share one host and a late event of a stopped
request can never land in the next one. On the wire each message is a JSON object tagged with
"op" (requests) or "ev" (events); `to_wire` and `request_from_wire` / `event_from_wire` are the
only places that know the tags.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from app.core.engine.protocol import ProtocolError
from app.core.engine.records import GenerationStats, ModelInfo, SamplingParams

DEFAULT_N_CTX = 8192  # tokens of context when nobody chose another size

Json = dict[str, Any]


# ----- requests (client -> host) ---------------------------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """Load a GGUF (and its projector) into this host; n_gpu_layers None = auto, -1 = all."""

    TAG: ClassVar[str] = "load"
    path: str
    mmproj: str | None = None
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    chat_template: str | None = None  # for base models that carry none
    flash_attn: bool | None = None  # None: off on the CPU (exact cache), on with GPU offload
    swa_full: bool = False
    kv_type: str = "f16"  # "f16" | "q8_0": the KV cache's element type
    n_cpu_moe: int = 0  # MoE: layers whose expert tensors stay in host memory
    # Requests answered at once, decoded together (continuous batching); each gets n_ctx / n_parallel.
    n_parallel: int = 1


@dataclass(frozen=True)
class Generate:
    """Answer a conversation (`messages`) or complete a raw `prompt`."""

    TAG: ClassVar[str] = "generate"
    id: int
    messages: list[Json] = field(default_factory=list)
    enable_thinking: bool = False
    params: SamplingParams = field(default_factory=SamplingParams)
    prompt: str | None = None
    cache: bool = True  # False: answer from a fresh context (for checking the cache)
    tools: list[Json] = field(default_factory=list)  # OpenAI-style function declarations


@dataclass(frozen=True)
class Stop:
    """Stop request `id` now (or drop it if it is still queued)."""

    TAG: ClassVar[str] = "stop"
    id: int


@dataclass(frozen=True)
class CountTokens:
    """How many tokens the prompt of `messages` takes."""

    TAG: ClassVar[str] = "count_tokens"
    id: int
    messages: list[Json] = field(default_factory=list)
    enable_thinking: bool = False
    tools: list[Json] = field(default_factory=list)


@dataclass(frozen=True)
class Tokenize(CountTokens):
    """The exact tokens the engine would feed for `messages` (for people debugging prompts)."""

    TAG: ClassVar[str] = "tokenize"


@dataclass(frozen=True)
class Ping:
    TAG: ClassVar[str] = "ping"


@dataclass(frozen=True)
class Shutdown:
    TAG: ClassVar[str] = "shutdown"


Request = LoadModel | Generate | Stop | CountTokens | Tokenize | Ping | Shutdown


# ----- events (host -> client) -----------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    TAG: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True)
class Progress:
    TAG: ClassVar[str] = "progress"
    fraction: float


@dataclass(frozen=True)
class Loaded:
    TAG: ClassVar[str] = "loaded"
    info: ModelInfo


@dataclass(frozen=True)
class Piece:
    """Raw generated text of request `id` (the client splits thinking from answer)."""

    TAG: ClassVar[str] = "piece"
    id: int
    text: str


@dataclass(frozen=True)
class Done:
    TAG: ClassVar[str] = "done"
    id: int
    stats: GenerationStats


@dataclass(frozen=True)
class Failed:
    """A request failed; `id` is None for a load. kind: load | context | input | internal."""

    TAG: ClassVar[str] = "error"
    id: int | None
    kind: str
    message: str
    op: str = ""


@dataclass(frozen=True)
class TokenCount:
    TAG: ClassVar[str] = "tokens"
    id: int
    count: int


@dataclass(frozen=True)
class TokenInfo:
    """One prompt token: its id, its text, and whether it is a control token."""

    id: int
    piece: str
    special: bool


@dataclass(frozen=True)
class TokenList:
    TAG: ClassVar[str] = "token_list"
    id: int
    tokens: list[TokenInfo]


@dataclass(frozen=True)
class Pong:
    TAG: ClassVar[str] = "pong"


Event = Ready | Progress | Loaded | Piece | Done | Failed | TokenCount | TokenList | Pong

_REQUESTS: dict[str, type] = {
    c.TAG: c for c in (LoadModel, Generate, Stop, CountTokens, Tokenize, Ping, Shutdown)
}
_EVENTS: dict[str, type] = {
    c.TAG: c for c in (Ready, Progress, Loaded, Piece, Done, Failed, TokenCount, TokenList, Pong)
}
# Fields that hold a record of their own (the only nesting the protocol has).
_NESTED: dict[str, type] = {"params": SamplingParams, "info": ModelInfo, "stats": GenerationStats}


_REQUEST_TYPES = frozenset(_REQUESTS.values())


def to_wire(message: Request | Event) -> Json:
    """The JSON object for one message."""
    if type(message) is Piece:  # sent every few tokens: built directly, asdict is slow
        return {"ev": Piece.TAG, "id": message.id, "text": message.text}
    tag_key = "op" if type(message) in _REQUEST_TYPES else "ev"
    return {tag_key: type(message).TAG, **asdict(message)}


def _build(cls: type, data: Json) -> Any:
    kwargs: Json = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        nested = _NESTED.get(f.name)
        if nested is not None and isinstance(value, dict):
            known = {k: v for k, v in value.items() if k in {x.name for x in fields(nested)}}
            value = nested(**known)
        elif cls is TokenList and f.name == "tokens":
            value = [TokenInfo(**t) for t in value]
        kwargs[f.name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ProtocolError(f"{cls.__name__} message is incomplete: {exc}") from exc


def request_from_wire(data: Json) -> Request:
    """The typed request for a JSON object; ProtocolError if it is not one."""
    cls = _REQUESTS.get(str(data.get("op")))
    if cls is None:
        raise ProtocolError(f"unknown request {data.get('op')!r}")
    request: Request = _build(cls, data)
    return request


def event_from_wire(data: Json) -> Event:
    """The typed event for a JSON object; ProtocolError if it is not one."""
    if data.get("ev") == Piece.TAG and "id" in data and "text" in data:
        return Piece(data["id"], data["text"])  # the one frequent event, without _build
    cls = _EVENTS.get(str(data.get("ev")))
    if cls is None:
        raise ProtocolError(f"unknown event {data.get('ev')!r}")
    event: Event = _build(cls, data)
    return event
