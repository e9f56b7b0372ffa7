"""Attachments on disk: one file per content, named by its sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from app.core import paths
from app.core.media.errors import MediaError


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def store_attachment(data: bytes, ext: str) -> Path:
    """Write `data` into the attachments folder as `<sha256>.<ext>` and return its path.

    Content addressing makes a second store of the same bytes free and lets the
    history refer to attachments by hash. The write is atomic (temp file and
    `os.replace`) so a crash never leaves a half-written attachment under a
    valid name.
    """
    ext = ext.lower().lstrip(".")
    if not ext.isalnum():
        raise ValueError(f"bad attachment extension: {ext!r}")
    folder = paths.attachments_dir()
    target = folder / f"{sha256_hex(data)}.{ext}"
    if target.exists() and target.stat().st_size == len(data):
        return target
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".part-", suffix=f".{ext}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def read_source(
    source: str | os.PathLike[str] | bytes, name: str | None, *,
    default_label: str, max_bytes: int, what: str,
) -> tuple[bytes, str]:
    """The bytes of an attachment given as a path or as data, and the name to show for it.

    Missing, unreadable, empty and oversized files raise MediaError naming the file; `what`
    ("images", "audio files") completes the size message.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data, label = bytes(source), name or default_label
    else:
        path = Path(source)
        label = name or path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise MediaError(
                    f"\u201c{label}\u201d is too large ({size // (1024 * 1024)} MB) \u2014 "
                    f"{what} up to {max_bytes // (1024 * 1024)} MB can be attached."
                )
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise MediaError(
                f"\u201c{label}\u201d could not be found \u2014 check that the file still exists."
            ) from exc
        except OSError as exc:
            raise MediaError(
                f"\u201c{label}\u201d could not be read ({exc.strerror or exc}) \u2014 "
                "check its permissions."
            ) from exc
    if not data:
        raise MediaError(f"\u201c{label}\u201d is empty (0 bytes) \u2014 pick another file.")
    return data, label
