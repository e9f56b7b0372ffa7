"""What goes into libmtmd and what comes out: media records, chunk records, prompt markers.

The chat template renders `<|image|>` / `<|audio|>` where a media item goes; libmtmd wants its
own marker there instead, one per item, in the order of the media list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

IMAGE_PLACEHOLDER = "<|image|>"
AUDIO_PLACEHOLDER = "<|audio|>"
_PLACEHOLDER_RE = re.compile(re.escape(IMAGE_PLACEHOLDER) + "|" + re.escape(AUDIO_PLACEHOLDER))

ChunkKind = Literal["text", "image", "audio"]


@dataclass(frozen=True)
class ImageInput:
    """An image as raw RGB24 bytes, row-major, `width * height * 3` long."""

    rgb: bytes
    width: int
    height: int


@dataclass(frozen=True)
class AudioInput:
    """A mono float32 PCM clip in [-1, 1]; `sample_rate`, when given, must be the projector's."""

    pcm: npt.NDArray[np.float32]
    sample_rate: int | None = None


MediaInput = ImageInput | AudioInput


@dataclass(frozen=True)
class ChunkInfo:
    """One piece of a tokenized prompt: text (with its token ids), an image or an audio clip."""

    kind: ChunkKind
    n_tokens: int
    tokens: tuple[int, ...] = ()


def with_media_markers(prompt: str, media: list[MediaInput], marker: str) -> str:
    """`prompt` with the template's placeholders turned into `marker`, checking kinds and count."""
    kinds = [("image" if isinstance(m, ImageInput) else "audio") for m in media]
    placeholders = [
        "image" if m.group(0) == IMAGE_PLACEHOLDER else "audio"
        for m in _PLACEHOLDER_RE.finditer(prompt)
    ]
    text = _PLACEHOLDER_RE.sub(lambda _m: marker, prompt)
    n_markers = text.count(marker)
    if n_markers != len(media):
        raise ValueError(
            f"The message has {n_markers} place(s) for images or audio but {len(media)}"
            " attachment(s) were given."
        )
    if placeholders and placeholders != kinds[: len(placeholders)]:
        raise ValueError(
            "The attachments do not match the message: the prompt expects "
            f"{', '.join(placeholders)} but got {', '.join(kinds)}."
        )
    return text
