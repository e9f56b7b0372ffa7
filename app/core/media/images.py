"""Image normalisation for the vision encoder: any Pillow-readable file in, upright 8-bit RGB out.

Gemma 4's vision tower (llama.cpp `gemma4v`) cuts the image into 16-pixel
patches and pools 3x3 of them into one token, so one token covers a 48x48
pixel square, and the projector accepts between 70 and 1120 tokens. An image
whose longer side is at most 33 x 48 = 1584 px therefore never exceeds the
largest budget (33 x 33 = 1089 tokens), so `DEFAULT_MAX_SIDE` is 1584: big
photos are scaled down once here, with a good filter, instead of being stored
at full size and resized again inside the encoder. Smaller budgets map to
smaller sides with `max_side_for_budget`.

Sources bigger than `MAX_SOURCE_PIXELS` (100 MP) are refused from their
header, before any pixel is decoded: a 20000x20000 PNG is a few kilobytes on
disk and 1.2 GB in memory.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.media.detail import (  # noqa: F401 - re-exported
    DEFAULT_IMAGE_BUDGET,
    IMAGE_TOKEN_BUDGETS,
    TOKEN_SIDE_PX,
    estimate_image_tokens,
    max_side_for_budget,
)
from app.core.media.errors import MediaError
from app.core.media.store import read_source, sha256_hex, store_attachment

try:  # HEIC/HEIF/AVIF from phones, when the optional plugin is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
except Exception:  # noqa: BLE001 - optional plugin: absent or broken means "no HEIC"
    pass

DEFAULT_MAX_SIDE = 1584  # = max_side_for_budget(1120)
MAX_SOURCE_PIXELS = 100_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024
THUMBNAIL_SIDE = 160

_WHITE = (255, 255, 255)
# Formats we may keep byte-for-byte: llama.cpp's stb_image decodes both.
_KEEPABLE = {"PNG": "png", "JPEG": "jpg"}
# Photos stay JPEG when re-encoded; everything else (screenshots, WebP, GIF) becomes lossless PNG.
_LOSSY = {"JPEG", "MPO", "HEIF", "AVIF"}


@dataclass(frozen=True)
class NormalizedImage:
    """An upright 8-bit RGB image ready for the vision encoder, plus a storable encoding."""

    rgb: bytes  # width * height * 3 bytes, row-major
    width: int
    height: int
    encoded: bytes  # PNG or JPEG bytes of exactly this image (for storage and the transcript)
    ext: str  # "png" or "jpg"
    sha256: str  # of `encoded`
    source_name: str
    original_width: int
    original_height: int

    def store(self) -> Path:
        """Save `encoded` into the attachments folder (named by sha256) and return the path."""
        return store_attachment(self.encoded, self.ext)

    def thumbnail_png(self, max_side: int = THUMBNAIL_SIDE) -> bytes:
        """PNG bytes of a thumbnail whose longer side is at most `max_side`."""
        image = Image.frombytes("RGB", (self.width, self.height), self.rgb)
        return _thumbnail(image, max_side)


def load_image(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
) -> NormalizedImage:
    """Read, validate and normalise an image from a path or from bytes (paste, drop of image data).

    Raises MediaError (with `.user_message` naming the file) for missing, empty,
    non-image, damaged or oversized files.
    """
    if max_side < 16:
        raise ValueError(f"max_side too small: {max_side}")
    data, label = read_source(source, name, default_label="pasted image", max_bytes=MAX_FILE_BYTES,
                              what="images")
    try:
        return _normalize(data, label, max_side)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(_too_big_message(label, None)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        # Pillow reports damaged files with any of these, depending on the plugin.
        raise MediaError(
            f"\u201c{label}\u201d is damaged or incomplete and cannot be used \u2014 "
            "try saving or exporting the image again."
        ) from exc
    except MemoryError as exc:
        raise MediaError(_too_big_message(label, None)) from exc


def make_thumbnail(
    source: NormalizedImage | str | os.PathLike[str] | bytes, max_side: int = THUMBNAIL_SIDE
) -> bytes:
    """PNG thumbnail bytes of an image (already normalised, or a path/bytes that gets normalised)."""
    if not isinstance(source, NormalizedImage):
        source = load_image(source, max_side=max(max_side, 16))
    return source.thumbnail_png(max_side)


def _too_big_message(label: str, size: tuple[int, int] | None) -> str:
    dims = f" ({size[0]}\u00d7{size[1]} pixels)" if size else ""
    return (
        f"\u201c{label}\u201d is too large{dims} \u2014 images up to "
        f"{MAX_SOURCE_PIXELS // 1_000_000} megapixels can be attached; scale it down first."
    )


def _normalize(data: bytes, label: str, max_side: int) -> NormalizedImage:
    with warnings.catch_warnings():
        # Between Pillow's warning threshold (~89 MP) and ours: our own check decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise MediaError(
                f"\u201c{label}\u201d is not an image Gemma Desktop can read \u2014 "
                "use a PNG, JPEG, WebP, GIF or BMP file."
            ) from exc
        image: Image.Image = opened
        fmt = opened.format or ""
        width, height = image.size
        if width <= 0 or height <= 0:
            raise MediaError(f"\u201c{label}\u201d has no pixels \u2014 pick another image.")
        if width * height > MAX_SOURCE_PIXELS:
            raise MediaError(_too_big_message(label, (width, height)))
        scale = max_side / max(width, height)
        if fmt == "JPEG" and scale < 1:
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 48 MP photo then never
            # exists at full size in memory. draft() keeps the result >= the target.
            opened.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image.seek(0)  # animated GIF/WebP/APNG: the first frame
        image.load()
        changed = False
        if _orientation(image) not in (None, 1):
            image = ImageOps.exif_transpose(image)
            changed = True
        rgb = _to_rgb(image)
        changed = changed or rgb is not image or image.size != (width, height)
        if max(rgb.size) > max_side:
            factor = max_side / max(rgb.size)
            target = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
            rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
            changed = True
    if not changed and fmt in _KEEPABLE:
        encoded, ext = data, _KEEPABLE[fmt]
    elif fmt in _LOSSY:
        encoded, ext = _encode(rgb, "JPEG"), "jpg"
    else:
        encoded, ext = _encode(rgb, "PNG"), "png"
    return NormalizedImage(
        rgb=rgb.tobytes(),
        width=rgb.width,
        height=rgb.height,
        encoded=encoded,
        ext=ext,
        sha256=sha256_hex(encoded),
        source_name=label,
        original_width=width,
        original_height=height,
    )


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - unreadable EXIF is the same as no EXIF
        return None
    return int(value) if isinstance(value, int) else None


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency composited on white, 16-bit and float gray scaled, not clipped."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scale_gray(image).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_gray(image: Image.Image) -> Image.Image:
    array = np.asarray(image)
    if image.mode == "F":
        values = array.astype(np.float64)
        top = float(np.nanmax(values)) if values.size else 0.0
        values = values * 255.0 if top <= 1.0 else values
    else:
        values = array.astype(np.float64)
        # 16-bit sources span 0..65535; an "I" image that stays within 0..255 is already 8-bit.
        if image.mode.startswith("I;16") or (values.size and float(values.max()) > 255.0):
            values = values / 257.0
    out = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
    return Image.fromarray(out)  # 2-D uint8 -> mode "L"


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=92, optimize=True)
    else:
        image.save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _thumbnail(image: Image.Image, max_side: int) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _encode(thumb, "PNG")
