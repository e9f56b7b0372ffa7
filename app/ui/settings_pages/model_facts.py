"""What the Model and Generation pages need from a GGUF header, read off the GUI thread.

Reading a header takes about a second for a big vocabulary on a slow disk, so the pages ask a
`ModelFactsJob` (a QThread) and fill in their labels when it answers. Answers are cached by
path, size and modification time: reopening the dialog is instant.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from app.core.hardware.memory import ModelShape
from app.core.storage.settings import GEMMA
from app.services.operations import OpContext, Operation

log = logging.getLogger(__name__)

# general.sampling.* keys (gguf.Keys.General.SAMPLING_*) -> Settings fields.
SAMPLING_KEYS = {
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repeat_penalty",
}
# What Google recommends for every Gemma when the file says nothing.
GEMMA_DEFAULTS: dict[str, float | int] = GEMMA.recommended()


@dataclass(frozen=True)
class ModelFacts:
    """One model file as the settings pages show it; `error` set when the header is unusable."""

    path: str
    name: str = ""
    size: int = 0
    shape: ModelShape | None = None
    sampling: dict[str, float | int] = field(default_factory=dict)
    is_projector: bool = False
    error: str = ""

    @property
    def n_layer(self) -> int:
        return self.shape.n_layer if self.shape else 0

    @property
    def max_context(self) -> int:
        return self.shape.max_context if self.shape else 0


def sampling_defaults(facts: ModelFacts | None) -> tuple[dict[str, float | int], bool]:
    """(values, from_file): the file's general.sampling.* over Gemma's recommended defaults."""
    values = dict(GEMMA_DEFAULTS)
    if facts is None or not facts.sampling:
        return values, False
    values.update(facts.sampling)
    return values, True


def read_facts(path: str) -> ModelFacts:
    """Read one header (never raises: problems come back as `error`)."""
    from app.core.hardware.validate import ValidationError, read_checked

    p = Path(path)
    try:
        size = p.stat().st_size
        info = read_checked(p)
    except ValidationError as exc:
        return ModelFacts(str(p), p.stem, 0, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any unreadable header is shown, not raised
        log.exception("could not read %s", p)
        return ModelFacts(str(p), p.stem, 0, error=f"{p.name} could not be read: {exc}")
    sampling: dict[str, float | int] = {}
    for key, name in SAMPLING_KEYS.items():
        value = info.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            sampling[name] = int(value) if name == "top_k" else round(float(value), 4)
    name = info.name or p.stem
    if info.is_projector:
        return ModelFacts(str(p), name, size, None, sampling, True)
    try:
        shape = ModelShape.from_gguf(info, file_bytes=size)
    except Exception as exc:  # noqa: BLE001 - the sampling defaults are still worth having
        log.warning("no memory shape for %s: %s", p, exc)
        return ModelFacts(str(p), name, size, None, sampling, False,
                          f"{p.name}: the memory it needs cannot be worked out ({exc}).")
    return ModelFacts(str(p), name, size, shape, sampling, False)


_cache: dict[tuple[str, int, int], ModelFacts] = {}
_cache_lock = threading.Lock()


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def cached_facts(path: str) -> ModelFacts | None:
    key = _key(path)
    with _cache_lock:
        return _cache.get(key) if key else None


def facts_for(path: str) -> ModelFacts:
    """Cached read_facts (for the worker thread)."""
    hit = cached_facts(path)
    if hit is not None:
        return hit
    facts = read_facts(path)
    key = _key(path)
    if key and not facts.error:
        with _cache_lock:
            _cache[key] = facts
    return facts


class ModelFactsJob(Operation):
    """Reads the headers of some model files in the background: one sig_item per file."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(self._read, name="settings-model-facts")
        self._paths = list(dict.fromkeys(paths))

    def _read(self, ctx: OpContext) -> None:
        for index, path in enumerate(self._paths):
            ctx.check()
            ctx.item(facts_for(path))
            ctx.progress((index + 1) / max(1, len(self._paths)))
