"""Prompts with images and audio: files -> normalised media -> libmtmd chunks, with prefix reuse.

The KV cache bookkeeping sees a media item as a run of one pseudo-token (negative, derived from
the item's sha256) as long as the tokens libmtmd gives it. So a follow-up turn about the same
picture matches the cached prefix through the picture and encodes nothing again; decoding
resumes only at a chunk boundary or inside a text chunk, never in the middle of an image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.engine.media_inputs import AudioInput, ImageInput, MediaInput
from app.core.engine.prompt_cache import MIN_CHUNK
from app.core.engine.records import EngineError, GenerationStats, SamplingParams, Stopped


def load_media_parts(messages: list[dict[str, Any]], sample_rate: int) -> tuple[list[MediaInput], list[str]]:
    """Every image/audio part of the conversation, in prompt order, with a content id for each."""
    from app.core.media.audio import load_audio
    from app.core.media.errors import MediaError
    from app.core.media.images import load_image

    items: list[MediaInput] = []
    ids: list[str] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type")
            if kind not in ("image", "audio"):
                continue
            path = Path(str(part.get("path", "")))
            try:
                if kind == "image":
                    image = load_image(path, max_side=int(part.get("max_side") or 0) or _default_side())
                    items.append(ImageInput(image.rgb, image.width, image.height))
                    ids.append(image.sha256)
                else:
                    clip = load_audio(path)
                    if clip.sample_rate != sample_rate:
                        raise EngineError("input", f"The projector expects {sample_rate} Hz audio.")
                    items.append(AudioInput(clip.samples, clip.sample_rate))
                    ids.append(clip.sha256)
            except MediaError as exc:
                raise EngineError("input", exc.user_message) from exc
            except FileNotFoundError as exc:
                raise EngineError("input", f"The attachment {path.name} is missing from the data folder.") from exc
    return items, ids


def _default_side() -> int:
    from app.core.media.detail import DEFAULT_IMAGE_BUDGET, max_side_for_budget

    return int(max_side_for_budget(DEFAULT_IMAGE_BUDGET))


def _pseudo_token(content_id: str) -> int:
    return -1 - int(hashlib.sha256(content_id.encode()).hexdigest()[:7], 16)


def generate_with_media(
    session: Any,
    messages: list[dict[str, Any]],
    enable_thinking: bool,
    params: SamplingParams,
    on_piece: Callable[[str], None],
) -> GenerationStats:
    """Generate for a conversation that carries images or audio."""
    engine = session.engine
    media_ctx = engine.media
    if media_ctx is None:
        raise EngineError(
            "input",
            "This model was loaded without its projector (mmproj), so it cannot see images or hear "
            "audio. Download the model's projector in the model manager.",
        )
    items, ids = load_media_parts(messages, media_ctx.audio_sample_rate)
    safe = session.escape_content(messages)  # user text must not spell control tokens
    prompt = session.render(safe, enable_thinking)
    head = session.render(safe, enable_thinking, generation=False)
    n_suffix = len(engine.tokenize(prompt[len(head):], add_special=False)) if prompt.startswith(head) else 0
    try:
        with media_ctx.prepared(prompt, items) as prepared:
            virtual: list[int] = []
            starts: list[int] = []  # where each chunk begins in `virtual`
            media_no = 0
            for info in prepared.infos:
                starts.append(len(virtual))
                if info.kind == "text":
                    virtual.extend(info.tokens)
                else:
                    virtual.extend([_pseudo_token(ids[media_no])] * info.n_tokens)
                    media_no += 1
            chunk_kinds = [info.kind for info in prepared.infos]

            def snap(n: int) -> int:
                # Back to the start of a media chunk that `n` falls inside, or of a text chunk
                # whose rest would be too short a batch to match a fresh context (prompt_cache).
                for i, start in enumerate(starts):
                    end = starts[i + 1] if i + 1 < len(starts) else len(virtual)
                    short = chunk_kinds[i] == "text" and end - n < MIN_CHUNK
                    if start < n < end and (chunk_kinds[i] != "text" or short):
                        return start
                return n

            def prefill(stats: GenerationStats) -> None:
                n_cached = engine.reuse_prefix(virtual, snap)
                stats.cached_tokens = n_cached
                checkpoint = len(virtual) - n_suffix if n_suffix else None
                last = len(prepared.infos) - 1
                for i, info in enumerate(prepared.infos):
                    start = starts[i]
                    end = starts[i + 1] if i < last else len(virtual)
                    if end <= n_cached:
                        continue
                    if info.kind == "text":
                        tokens = list(info.tokens[max(0, n_cached - start):])
                        if i == last:
                            engine.prefill_with_checkpoint(tokens, checkpoint)
                        else:
                            engine.decode(tokens, logits_last=False)
                    else:
                        if engine.stop_event.is_set():
                            raise Stopped
                        engine.eval_media_chunk(prepared, i, virtual[start:end], logits_last=i == last)

            stats: GenerationStats = engine.generate(len(virtual), params, on_piece, prefill)
            return stats
    except ValueError as exc:
        raise EngineError("input", str(exc)) from exc
