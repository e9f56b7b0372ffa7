"""The server's API key on disk: owner-only file beside the settings, as the HF token is kept."""

from __future__ import annotations

import os
from pathlib import Path

from app.core import paths

KEY_FILE = "server-api-key"


def key_path() -> Path:
    return paths.config_dir() / KEY_FILE


def load_key() -> str | None:
    try:
        text = key_path().read_text().strip()
    except OSError:
        return None
    return text or None


def save_key(key: str) -> Path:
    """Write the key with mode 0600 from the start (never readable by others, even briefly)."""
    path = key_path()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.strip())
    os.replace(tmp, path)
    return path
