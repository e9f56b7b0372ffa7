"""Image normalisation on real files made with Pillow (and a hand-made PNG for the size limits)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core import paths
from app.core.media import images
from app.core.media.errors import MediaError
from app.core.media.images import load_image, make_thumbnail, max_side_for_budget


def _save(image: Image.Image, path: Path, fmt: str, **params: object) -> Path:
    image.save(path, fmt, **params)
    return path


def _pixel(result: images.NormalizedImage, x: int, y: int) -> tuple[int, int, int]:
    offset = (y * result.width + x) * 3
    r, g, b = result.rgb[offset : offset + 3]
    return r, g, b


def _close(actual: tuple[int, int, int], expected: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _blank_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG built row by row: a few KB on disk, huge once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def test_plain_png_is_kept_byte_for_byte_and_stored_by_hash(tmp_path: Path) -> None:
    source = _save(Image.new("RGB", (64, 32), (10, 200, 30)), tmp_path / "green.png", "PNG")
    result = load_image(source)
    assert (result.width, result.height) == (64, 32)
    assert result.ext == "png"
    assert result.encoded == source.read_bytes()
    assert len(result.rgb) == 64 * 32 * 3
    assert _close(_pixel(result, 5, 5), (10, 200, 30), tol=0)
    assert result.source_name == "green.png"
    stored = result.store()
    assert stored.parent == paths.attachments_dir()
    assert stored.name == f"{result.sha256}.png"
    assert stored.read_bytes() == source.read_bytes()
    assert result.store() == stored  # same content, same file


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: Path) -> None:
    raw = Image.new("RGB", (200, 100), (0, 0, 255))
    raw.paste((255, 0, 0), (0, 0, 100, 100))  # left half red as stored in the file
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    source = _save(raw, tmp_path / "phone.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    result = load_image(source)
    assert (result.width, result.height) == (100, 200)
    assert _close(_pixel(result, 50, 40), (255, 0, 0), tol=30)  # stored left -> shown on top
    assert _close(_pixel(result, 50, 160), (0, 0, 255), tol=30)
    assert result.ext == "jpg"
    upright = Image.open(io.BytesIO(result.encoded))
    assert upright.size == (100, 200)
    assert upright.getexif().get(0x0112) in (None, 1)


def test_gif_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (40, 40), color) for color in ((255, 0, 0), (0, 255, 0))]
    source = tmp_path / "anim.gif"
    frames[0].save(source, "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = load_image(source)
    assert _close(_pixel(result, 20, 20), (255, 0, 0), tol=2)
    assert result.ext == "png"


def test_webp_and_bmp_are_read(tmp_path: Path) -> None:
    webp = _save(Image.new("RGB", (30, 20), (0, 0, 250)), tmp_path / "a.webp", "WEBP", lossless=True)
    bmp = _save(Image.new("RGB", (30, 20), (250, 250, 0)), tmp_path / "a.bmp", "BMP")
    assert _close(_pixel(load_image(webp), 3, 3), (0, 0, 250), tol=0)
    result = load_image(bmp)
    assert _close(_pixel(result, 3, 3), (250, 250, 0), tol=0)
    assert result.ext == "png"  # BMP is stored as PNG, which llama.cpp and the UI both read


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # fully transparent black
    image.paste((255, 0, 0, 128), (10, 0, 20, 10))  # half-transparent red
    result = load_image(_save(image, tmp_path / "alpha.png", "PNG"))
    assert _close(_pixel(result, 2, 5), (255, 255, 255), tol=0)
    assert _close(_pixel(result, 15, 5), (255, 127, 127), tol=2)
    palette = image.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = palette.getpixel((2, 5))
    result = load_image(_save(palette, tmp_path / "palette.png", "PNG", transparency=palette.getpixel((2, 5))))
    assert _close(_pixel(result, 2, 5), (255, 255, 255), tol=0)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    source = tmp_path / "deep.png"
    Image.fromarray(ramp).save(source, "PNG")
    with Image.open(source) as check:
        assert check.mode.startswith("I")
    result = load_image(source)
    row = [_pixel(result, x, 1)[0] for x in range(0, 256, 32)]
    assert row == sorted(row)
    assert row[0] <= 1 and 100 < row[4] < 155 and _pixel(result, 255, 1)[0] == 255


def test_cmyk_and_grayscale_become_rgb(tmp_path: Path) -> None:
    cmyk = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "print.jpg", "JPEG")
    assert _close(_pixel(load_image(cmyk), 8, 8), (255, 0, 0), tol=20)
    gray = _save(Image.new("L", (16, 16), 77), tmp_path / "gray.png", "PNG")
    result = load_image(gray)
    assert _close(_pixel(result, 8, 8), (77, 77, 77), tol=0)
    assert len(result.rgb) == 16 * 16 * 3


def test_large_photo_is_scaled_down_keeping_aspect(tmp_path: Path) -> None:
    source = _save(Image.new("RGB", (6000, 4000), (90, 90, 200)), tmp_path / "big.jpg", "JPEG")
    result = load_image(source)
    assert (result.width, result.height) == (images.DEFAULT_MAX_SIDE, 1056)
    assert (result.original_width, result.original_height) == (6000, 4000)
    small = load_image(source, max_side=max_side_for_budget(280))
    assert (small.width, small.height) == (768, 512)
    assert Image.open(io.BytesIO(small.encoded)).size == (768, 512)


def test_bytes_input_uses_the_given_name() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "PNG")
    assert load_image(buffer.getvalue()).source_name == "pasted image"
    assert load_image(buffer.getvalue(), name="clip.png").source_name == "clip.png"


def test_20000_square_image_is_refused_from_its_header(tmp_path: Path) -> None:
    source = tmp_path / "bomb.png"
    source.write_bytes(_blank_bilevel_png(20000, 20000))
    assert source.stat().st_size < 200_000
    started = time.monotonic()
    with pytest.raises(MediaError) as caught:
        load_image(source)
    assert time.monotonic() - started < 3.0
    assert "bomb.png" in caught.value.user_message
    assert "too large" in caught.value.user_message


def test_our_own_pixel_cap_applies_below_pillows_bomb_limit(tmp_path: Path) -> None:
    # 108 MP: Pillow alone would only warn (its error starts at ~179 MP).
    source = tmp_path / "wide.png"
    source.write_bytes(_blank_bilevel_png(12000, 9000))
    with pytest.raises(MediaError) as caught:
        load_image(source)
    assert "12000\u00d79000" in caught.value.user_message


def test_truncated_png_is_refused_by_name(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    whole = tmp_path / "whole.png"
    Image.fromarray(noise).save(whole, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(MediaError) as caught:
        load_image(cut)
    assert "cut.png" in caught.value.user_message
    assert "damaged or incomplete" in caught.value.user_message


def test_text_file_named_jpg_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a picture\n" * 20)
    with pytest.raises(MediaError) as caught:
        load_image(fake)
    assert "holiday.jpg" in caught.value.user_message
    assert "not an image" in caught.value.user_message
    assert isinstance(caught.value, ValueError)


def test_empty_and_missing_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty.png"):
        load_image(empty)
    with pytest.raises(MediaError, match="could not be found"):
        load_image(tmp_path / "gone.png")


def test_thumbnail_fits_the_box(tmp_path: Path) -> None:
    source = _save(Image.new("RGB", (900, 300), (5, 5, 5)), tmp_path / "wide.png", "PNG")
    thumb = Image.open(io.BytesIO(make_thumbnail(source, max_side=120)))
    assert thumb.format == "PNG"
    assert thumb.size == (120, 40)
    again = Image.open(io.BytesIO(load_image(source).thumbnail_png(64)))
    assert again.size == (64, 21)


def test_token_budget_to_side() -> None:
    sides = {budget: max_side_for_budget(budget) for budget in images.IMAGE_TOKEN_BUDGETS}
    assert sides == {70: 384, 140: 528, 280: 768, 560: 1104, 1120: 1584}
    for budget, side in sides.items():
        assert (side // images.TOKEN_SIDE_PX) ** 2 <= budget  # a square never exceeds its budget
    assert sides[1120] == images.DEFAULT_MAX_SIDE
    assert images.estimate_image_tokens(768, 768) == 256
    with pytest.raises(ValueError):
        max_side_for_budget(300)
