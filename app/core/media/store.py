"""Attachments on disk: one file per content, named by its sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from app.core import paths


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
