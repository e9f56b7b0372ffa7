"""Capture llama.cpp's log: forward it to stderr (the host's log) and keep what we need.

The recent error lines explain load failures in plain words; the buffer-size lines tell how much
memory llama.cpp really allocated (model weights, KV cache, compute buffers).
"""

from __future__ import annotations

import re
import sys
from collections import deque
from typing import Any

import llama_cpp as lc

GGML_LOG_LEVEL_DEBUG = 1
GGML_LOG_LEVEL_ERROR = 4
GGML_LOG_LEVEL_CONT = 5

_lines: deque[tuple[int, str]] = deque(maxlen=400)
_partial: list[str] = []
_partial_level = 0
_sizes: list[str] = []  # buffer-size lines, kept apart: debug lines would push them out of _lines
_callback: Any = None
_echo = True
keep_debug = False  # tests that read llama.cpp's debug lines (tensor placement) turn this on

_SIZE_RE = re.compile(r"([\w.-]+)\s+(model|KV|compute|output)\s+buffer size\s*=\s*([\d.]+)\s*MiB", re.I)


def _on_log(level: int, text: bytes | None, _data: Any) -> None:
    if not text:
        return
    global _partial_level
    s = text.decode("utf-8", errors="replace")
    if _echo:
        sys.stderr.write(s)
    if not _partial and level != GGML_LOG_LEVEL_CONT:
        _partial_level = level
    _partial.append(s)
    if s.endswith("\n"):
        line = "".join(_partial).rstrip("\n")
        _partial.clear()
        # Debug lines go to the log file only: a Vulkan graph reservation writes hundreds of them,
        # which would push a load's "offloaded X/Y layers" line out of the kept tail.
        if _partial_level != GGML_LOG_LEVEL_DEBUG or keep_debug:
            _lines.append((_partial_level, line))
        if _SIZE_RE.search(line):
            _sizes.append(line)


def install(echo: bool = True) -> None:
    """Route llama.cpp's (and libmtmd's) log through us; idempotent."""
    global _callback, _echo
    _echo = echo
    if _callback is None:
        _callback = lc.llama_log_callback(_on_log)
        lc.llama_log_set(_callback, None)


def clear() -> None:
    """Forget earlier lines (call before an operation whose failure we want to explain)."""
    _lines.clear()
    _sizes.clear()


def lines() -> list[str]:
    """Every captured line since the last clear()."""
    return [line for _level, line in _lines]


def recent_errors() -> list[str]:
    """Error-level lines (with a few context lines' worth of warnings) since the last clear()."""
    errs = [line.strip() for level, line in _lines if level == GGML_LOG_LEVEL_ERROR or "error" in line.lower()]
    return [e for e in errs if e][-5:]


def memory_summary() -> dict[str, int]:
    """Bytes llama.cpp allocated, by kind (model / KV / compute / output), summed over devices."""
    totals: dict[str, int] = {}
    for kinds in buffers_by_device().values():
        for kind, size in kinds.items():
            totals[kind] = totals.get(kind, 0) + size
    return totals


def buffers_by_device() -> dict[str, dict[str, int]]:
    """Bytes llama.cpp allocated per buffer ("CPU_Mapped", "Vulkan0", "Vulkan_Host", …) and kind."""
    out: dict[str, dict[str, int]] = {}
    for line in _sizes:
        m = _SIZE_RE.search(line)
        if m:
            kinds = out.setdefault(m.group(1), {})
            kind = m.group(2).lower()
            kinds[kind] = kinds.get(kind, 0) + int(float(m.group(3)) * 1024 * 1024)
    return out
