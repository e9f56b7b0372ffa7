"""Where the app keeps its files (platformdirs, overridable for tests and portable installs)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from app import APP_ID

# One variable moves everything (portable installs, tests); per-folder variables win over it.
_HOME_VAR = "GEMMA_DESKTOP_HOME"


def _folder(kind: str, default: str) -> Path:
    explicit = os.environ.get(f"GEMMA_DESKTOP_{kind.upper()}_DIR")
    if explicit:
        path = Path(explicit)
    elif os.environ.get(_HOME_VAR):
        path = Path(os.environ[_HOME_VAR]) / kind
    else:
        path = Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings file lives here."""
    return _folder("config", platformdirs.user_config_dir(APP_ID, appauthor=False))


def data_dir() -> Path:
    """History database and attachments."""
    return _folder("data", platformdirs.user_data_dir(APP_ID, appauthor=False))


def cache_dir() -> Path:
    """Catalog cache, partial downloads' bookkeeping."""
    return _folder("cache", platformdirs.user_cache_dir(APP_ID, appauthor=False))


def log_dir() -> Path:
    """Log files (stack traces go here, not to the user)."""
    return _folder("log", platformdirs.user_log_dir(APP_ID, appauthor=False))


def models_dir() -> Path:
    """Downloaded and imported GGUF files (the settings may point elsewhere)."""
    return _folder("models", str(Path(platformdirs.user_data_dir(APP_ID, appauthor=False)) / "models"))


def attachments_dir() -> Path:
    """Images and audio clips, named by their sha256."""
    path = data_dir() / "attachments"
    path.mkdir(parents=True, exist_ok=True)
    return path
