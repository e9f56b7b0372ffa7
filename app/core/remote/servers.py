"""The remote servers the user added (Settings → Model → Add a server), kept owner-only on disk.

One JSON file in the config folder, written with mode 0600 from the start as the HF token is,
because it holds the servers' API keys. Keys are never logged: `RemoteServer.__repr__` hides them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app.core import paths
from app.core.remote.client import Endpoint

log = logging.getLogger(__name__)

SERVERS_FILE = "remote-servers.json"
PATH_PREFIX = "remote:"  # ModelInfo.path of a server's model (never a file)


@dataclass(frozen=True)
class RemoteServer:
    """An OpenAI-compatible endpoint and the model the chat uses on it."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """host:port as the user typed it ("gpu-box:8000")."""
        parts = urlsplit(self.base_url if "://" in self.base_url else "http://" + self.base_url)
        return parts.netloc or self.base_url

    @property
    def id(self) -> str:
        """What the settings store as the chat's server, and the window shows as its model."""
        return f"{self.model} @ {self.host}"

    @property
    def label(self) -> str:
        """The short name the window shows: a model id that is a file path shows its file name."""
        name = self.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or self.model
        return f"{name.removesuffix('.gguf')} @ {self.host}"

    @property
    def model_path(self) -> str:
        """The `ModelInfo.path` the window sees for this server's model."""
        return PATH_PREFIX + self.id

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(normalize_url(self.base_url), self.api_key or None)


def normalize_url(url: str) -> str:
    """A base URL with a scheme and without a trailing slash ("gpu-box:8000" → "http://gpu-box:8000")."""
    url = url.strip().rstrip("/")
    return url if "://" in url else "http://" + url


def servers_path() -> Path:
    return paths.config_dir() / SERVERS_FILE


def load_servers(path: Path | None = None) -> list[RemoteServer]:
    """The saved servers; an unreadable file gives none (and is left as it is)."""
    path = path or servers_path()
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        log.warning("could not read %s; no remote servers listed", path)
        return []
    out: list[RemoteServer] = []
    for row in data.get("servers", []) if isinstance(data, dict) else []:
        if isinstance(row, dict) and isinstance(row.get("base_url"), str) \
                and isinstance(row.get("model"), str):
            key = row.get("api_key")
            out.append(RemoteServer(row["base_url"], row["model"],
                                    key if isinstance(key, str) and key else None))
    return out


def save_servers(servers: list[RemoteServer], path: Path | None = None) -> Path:
    """Write the list owner-only (mode 0600 from the start, never readable by others even briefly)."""
    path = path or servers_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"base_url": s.base_url, "model": s.model, "api_key": s.api_key} for s in servers]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"servers": rows}, f, indent=1)
    os.replace(tmp, path)
    return path


def find_server(server_id: str | None, servers: list[RemoteServer] | None = None) -> RemoteServer | None:
    if not server_id:
        return None
    for server in servers if servers is not None else load_servers():
        if server.id == server_id:
            return server
    return None
