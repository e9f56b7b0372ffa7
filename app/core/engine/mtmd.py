"""Images and audio into a llama.cpp context through libmtmd (llama_cpp.mtmd_cpp, ctypes).

The stock `Gemma4ChatHandler` only loads images from URLs and owns the whole chat loop; the
engine host needs less and more: raw RGB images and float PCM audio, evaluated chunk by chunk
into its own `llama_context` at a given position, so that text before and after keeps using the
host's prompt cache.

How a prompt with media is written (Gemma 4, checked against the vendored tools/mtmd/mtmd.cpp):

- `tokenize` and `prepared` accept the chat template's `<|image|>` / `<|audio|>` or libmtmd's
  own marker (`media_marker()`) and convert the former (see `media_inputs`).
- libmtmd itself wraps each image in `<|image>` … `<image|>` and each clip in `<|audio>` …
  `<audio|>` (projector types gemma4v / gemma4a), so the prompt must not carry those.
- One image costs between 70 and 1120 tokens (Gemma 4's budgets; `image_max_tokens` lowers the
  ceiling), one second of 16 kHz audio 25 tokens.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.engine.media_inputs import (
    ChunkInfo,
    ChunkKind,
    ImageInput,
    MediaInput,
    with_media_markers,
)

__all__ = ["MediaContext", "PreparedPrompt"]

log = logging.getLogger(__name__)

# libmtmd logs through one process-wide callback. We keep the recent lines so that a failed
# load can say why (the C API only returns NULL), and pass them to Python logging.
_LOG_LINES: collections.deque[str] = collections.deque(maxlen=40)
_CLIP_BACKEND = re.compile(r"CLIP using (\S+) backend")
_LOG_LOCK = threading.Lock()
_log_callback: Any = None  # the ctypes callback object must outlive every C call
_GGML_LOG_LEVEL_INFO, _GGML_LOG_LEVEL_WARN, _GGML_LOG_LEVEL_ERROR, _GGML_LOG_LEVEL_CONT = 2, 3, 4, 5


def _install_log_callback() -> None:
    global _log_callback
    import llama_cpp
    import llama_cpp.mtmd_cpp as mtmd

    if _log_callback is not None:
        return

    partial: list[str] = []
    line_level = [_GGML_LOG_LEVEL_INFO]

    def _on_mtmd_log(level: int, text: bytes | None, _user: object) -> None:
        # Lines may arrive in pieces (GGML_LOG_LEVEL_CONT); a line ends with "\n".
        piece = (text or b"").decode("utf-8", errors="replace")
        with _LOG_LOCK:
            if level != _GGML_LOG_LEVEL_CONT:
                line_level[0] = level
            partial.append(piece)
            if not piece.endswith("\n"):
                return
            line = "".join(partial).rstrip("\n")
            partial.clear()
            if not line.strip():
                return
            _LOG_LINES.append(line)
            level = line_level[0]
        log.debug("mtmd: %s", line)
        # Warnings and errors also go to stderr, whose tail the engine client shows when
        # the host dies.
        if level in (_GGML_LOG_LEVEL_WARN, _GGML_LOG_LEVEL_ERROR):
            sys.stderr.write(f"mtmd: {line}\n")

    _log_callback = llama_cpp.llama_log_callback(_on_mtmd_log)
    mtmd.mtmd_log_set(_log_callback, None)
    mtmd.mtmd_helper_log_set(_log_callback, None)


def _recent_errors() -> str:
    """The last few mtmd log lines that look like the reason for a failure."""
    with _LOG_LOCK:
        lines = list(_LOG_LINES)
    words = ("error", "fail", "unable", "invalid", "unknown", "mismatch")
    picked = [ln.strip() for ln in lines if any(w in ln.lower() for w in words)]
    return " / ".join(picked[-3:])


def _eval_error(rc: int) -> ValueError:
    """What the user reads when libmtmd could not encode or decode a prompt's media."""
    detail = _recent_errors()
    return ValueError(
        "The images or audio could not be processed by the model"
        + (f" ({detail})" if detail else f" (error {rc})")
        + ". Try again with a different file; if it keeps failing, restart the engine."
    )


class MediaContext:
    """Owns one libmtmd context (projector + the `llama_model` it feeds); close() frees it.

    Close this before the model is freed: libmtmd keeps a pointer to it.
    """

    def __init__(
        self,
        mmproj_path: str,
        model: Any,
        *,
        n_threads: int,
        use_gpu: bool,
        image_min_tokens: int | None = None,
        image_max_tokens: int | None = None,
    ) -> None:
        import llama_cpp.mtmd_cpp as mtmd

        self._mtmd = mtmd
        self._lock = threading.Lock()
        _install_log_callback()
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = max(1, int(n_threads))
        params.print_timings = False
        if image_min_tokens:
            params.image_min_tokens = int(image_min_tokens)
        if image_max_tokens:
            params.image_max_tokens = int(image_max_tokens)
        ctx = mtmd.mtmd_init_from_file(str(mmproj_path).encode(), model, params)
        if not ctx:
            detail = _recent_errors()
            raise ValueError(
                f"The vision/audio projector {mmproj_path} could not be loaded"
                + (f" ({detail})" if detail else "")
                + ". Check that it is the projector (mmproj) file made for this model, and"
                " download it again if it may be damaged."
            )
        self._ctx: Any = ctx
        with _LOG_LOCK:
            using = [m.group(1) for m in map(_CLIP_BACKEND.search, _LOG_LINES) if m]
        self.device: str = using[-1] if using else ""
        self.supports_vision: bool = bool(mtmd.mtmd_support_vision(ctx))
        self.supports_audio: bool = bool(mtmd.mtmd_support_audio(ctx))
        rate = int(mtmd.mtmd_get_audio_sample_rate(ctx)) if self.supports_audio else 0
        self.audio_sample_rate: int = max(rate, 0)

    # -- public API ---------------------------------------------------------------------

    def media_marker(self) -> str:
        """The marker libmtmd replaces with the next media item (`<__media__>` by default)."""
        marker = self._mtmd.mtmd_get_marker(self._require_ctx())
        raw: bytes = marker or self._mtmd.mtmd_default_marker()
        return raw.decode("utf-8")

    def tokenize(self, prompt: str, media: list[MediaInput]) -> list[ChunkInfo]:
        """Split a prompt into text and media chunks with their token counts (nothing is run)."""
        with self._lock:
            chunks = self._tokenize(prompt, media)
            try:
                return self._describe(chunks)
            finally:
                self._mtmd.mtmd_input_chunks_free(chunks)

    @contextlib.contextmanager
    def prepared(self, prompt: str, media: list[MediaInput]) -> Iterator[PreparedPrompt]:
        """Tokenize once, then evaluate chunk by chunk (the engine reuses cached chunks)."""
        with self._lock:
            chunks = self._tokenize(prompt, media)
            try:
                yield PreparedPrompt(self, chunks, self._describe(chunks))
            finally:
                self._mtmd.mtmd_input_chunks_free(chunks)

    def _eval_chunk(self, lctx: Any, chunks: Any, index: int, n_past: int, n_batch: int,
                    logits_last: bool, seq_id: int) -> int:
        import llama_cpp

        chunk = self._mtmd.mtmd_input_chunks_get(chunks, index)
        new_n_past = llama_cpp.llama_pos(0)
        rc = self._mtmd.mtmd_helper_eval_chunk_single(
            self._require_ctx(), lctx, chunk, llama_cpp.llama_pos(n_past),
            llama_cpp.llama_seq_id(seq_id), int(n_batch), bool(logits_last), ctypes.byref(new_n_past),
        )
        if rc != 0:
            raise _eval_error(rc)
        return int(new_n_past.value)

    def close(self) -> None:
        """Free the libmtmd context (idempotent)."""
        with self._lock:
            if self._ctx is not None:
                self._mtmd.mtmd_free(self._ctx)
                self._ctx = None

    def __enter__(self) -> MediaContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # A safety net only: the engine closes explicitly, before the model goes.
        with contextlib.suppress(Exception):  # never raise from a finalizer
            self.close()

    # -- internals ----------------------------------------------------------------------

    def _require_ctx(self) -> Any:
        if self._ctx is None:
            raise ValueError("The vision/audio projector has been closed; load the model again.")
        return self._ctx

    def _make_bitmap(self, item: MediaInput) -> Any:
        mtmd = self._mtmd
        if isinstance(item, ImageInput):
            if not self.supports_vision:
                raise ValueError("This model's projector cannot read images; choose a model with vision.")
            if item.width <= 0 or item.height <= 0 or len(item.rgb) != item.width * item.height * 3:
                raise ValueError(
                    f"The image data is damaged: expected {item.width}x{item.height} RGB pixels."
                )
            buf = (ctypes.c_uint8 * len(item.rgb)).from_buffer_copy(item.rgb)
            bitmap = mtmd.mtmd_bitmap_init(item.width, item.height, buf)
        else:
            if not self.supports_audio:
                raise ValueError(
                    "This model cannot listen to audio; use Gemma 4 E2B or E4B for voice, or"
                    " send the clip as transcribed text."
                )
            if item.sample_rate is not None and item.sample_rate != self.audio_sample_rate:
                raise ValueError(
                    f"The audio clip is at {item.sample_rate} Hz but the model needs"
                    f" {self.audio_sample_rate} Hz; resample it first."
                )
            pcm = np.ascontiguousarray(item.pcm, dtype=np.float32).reshape(-1)
            if pcm.size == 0:
                raise ValueError("The audio clip is empty; record or choose another clip.")
            bitmap = mtmd.mtmd_bitmap_init_from_audio(
                pcm.size, pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            )
        if not bitmap:
            raise ValueError("The image or audio clip could not be prepared for the model.")
        return bitmap

    def _tokenize(self, prompt: str, media: list[MediaInput]) -> Any:
        """mtmd_tokenize; the caller frees the returned chunks."""
        mtmd = self._mtmd
        ctx = self._require_ctx()
        text = with_media_markers(prompt, media, self.media_marker())
        bitmaps: list[Any] = []
        try:
            for item in media:
                bitmaps.append(self._make_bitmap(item))
            chunks = mtmd.mtmd_input_chunks_init()
            if not chunks:
                raise ValueError("Out of memory while preparing the prompt.")
            data = text.encode("utf-8")
            itext = mtmd.mtmd_input_text()
            itext.text = data
            itext.text_len = len(data)
            itext.add_special = False  # the chat template already wrote BOS
            itext.parse_special = True
            array = (mtmd.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
            rc = mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(itext), array, len(bitmaps))
            if rc != 0:
                mtmd.mtmd_input_chunks_free(chunks)
                reason = {1: "the number of media markers does not match the attachments",
                          2: "an image or audio clip could not be preprocessed"}.get(rc, f"error {rc}")
                detail = _recent_errors()
                raise ValueError(
                    f"The prompt could not be prepared: {reason}"
                    + (f" ({detail})" if detail and rc != 1 else "") + "."
                )
            return chunks
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _describe(self, chunks: Any) -> list[ChunkInfo]:
        mtmd = self._mtmd
        out: list[ChunkInfo] = []
        for i in range(int(mtmd.mtmd_input_chunks_size(chunks))):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            kind_id = int(mtmd.mtmd_input_chunk_get_type(chunk))
            if kind_id == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                ptr = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens = tuple(int(ptr[j]) for j in range(n.value)) if ptr else ()
                out.append(ChunkInfo("text", len(tokens), tokens))
            else:
                kind: ChunkKind = "image" if kind_id == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE else "audio"
                out.append(ChunkInfo(kind, int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))))
        return out


@dataclass
class PreparedPrompt:
    """A tokenized prompt whose chunks (text, image, audio) can be evaluated one by one."""

    owner: MediaContext
    _chunks: Any
    infos: list[ChunkInfo]

    def eval_chunk(self, lctx: Any, index: int, n_past: int, n_batch: int, *,
                   logits_last: bool, seq_id: int = 0) -> int:
        """Encode (media) or decode (text) chunk `index` at position n_past; returns the new n_past."""
        return self.owner._eval_chunk(lctx, self._chunks, index, n_past, n_batch, logits_last, seq_id)
