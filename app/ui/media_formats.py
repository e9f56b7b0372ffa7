"""Which files and clipboard data become attachments, and the image detail sent with them."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QMimeData

AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "oga", "mp3", "opus"})
IMAGE_PATTERNS = "*.png *.jpg *.jpeg *.webp *.gif *.bmp *.tif *.tiff *.heic *.heif *.avif"
AUDIO_PATTERNS = "*.wav *.flac *.ogg *.oga *.mp3"
PICK_FILTER = (f"Images and audio ({IMAGE_PATTERNS} {AUDIO_PATTERNS});;Images ({IMAGE_PATTERNS});;"
               f"Audio ({AUDIO_PATTERNS});;All files (*)")
# Raw image data on the clipboard or in a drop, best first (PNG keeps a screenshot lossless).
RAW_IMAGE_FORMATS = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")


def with_image_detail(messages: list[dict[str, Any]], budget: Any) -> list[dict[str, Any]]:
    """Add "max_side" (from the image token budget 70..1120) to every image part sent to the engine."""
    from app.core.media.detail import IMAGE_TOKEN_BUDGETS, max_side_for_budget

    if budget not in IMAGE_TOKEN_BUDGETS:
        return messages
    side = max_side_for_budget(int(budget))
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    part["max_side"] = side
    return messages


def attachable(mime: QMimeData | None) -> bool:
    """A drop or paste carries a local file or image data."""
    if mime is None:
        return False
    if mime.hasUrls() and any(url.isLocalFile() for url in mime.urls()):
        return True
    return mime.hasImage() or any(mime.hasFormat(fmt) for fmt in RAW_IMAGE_FORMATS)
