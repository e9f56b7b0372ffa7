"""The Hugging Face Hub as the app sees it: endpoint, token, offline switch, file metadata and listings.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE once, at import. The app (and its tests)
may change them later, so everything here is resolved at call time and passed to huggingface_hub
explicitly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import constants

# huggingface_hub's API, error and HTTP modules take ~0.7 s to import: they are imported where
# used, so that starting the app (which may never download) does not pay for them.
from app.core.download.errors import AuthRequiredError, NetworkError, NotFoundError, OfflineError

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "ON", "YES", "TRUE"}


class RetryableError(Exception):
    """A failure worth retrying (drop, stall, 5xx); wrapped into NetworkError when retries run out."""


def env_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now, or as huggingface_hub saw it at import."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").upper() in _TRUE:
            return True
    return bool(constants.HF_HUB_OFFLINE)


def token_path() -> Path:
    """Where huggingface_hub keeps the token (HF_TOKEN_PATH, else $HF_HOME/token), resolved now."""
    explicit = os.environ.get("HF_TOKEN_PATH")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "token"


def get_token() -> str | None:
    """The user's Hugging Face token: HF_TOKEN, then the file `hf auth login` writes."""
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    try:
        text = token_path().read_text().strip()
    except OSError:
        return None
    return text or None


def save_token(token: str) -> Path:
    """Store the token where huggingface_hub (and `hf` CLI) read it; owner-only permissions."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token.strip())
    os.replace(tmp, path)
    return path


def delete_token() -> None:
    token_path().unlink(missing_ok=True)


@dataclass(frozen=True)
class RemoteFile:
    """One file on the Hub: where to GET it and what the bytes must hash to."""

    repo_id: str
    filename: str
    revision: str
    url: str
    size: int
    sha256: str | None  # the LFS sha256; None for small non-LFS files
    commit: str | None
    etag: str


@dataclass(frozen=True)
class RemoteEntry:
    """A row of a repository listing (catalog refresh)."""

    name: str
    size: int
    sha256: str | None


class HubClient:
    """Endpoint + token + offline flag, and the few Hub calls the app makes."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        offline: bool | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._endpoint = endpoint
        self._token = token
        self._offline = offline
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return (self._endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")

    @property
    def token(self) -> str | None:
        return self._token if self._token is not None else get_token()

    @property
    def offline(self) -> bool:
        return self._offline if self._offline is not None else env_offline()

    def check_online(self, what: str = "download") -> None:
        if self.offline:
            raise OfflineError(what)

    def auth_headers(self) -> dict[str, str]:
        token = self.token
        return {"authorization": f"Bearer {token}"} if token else {}

    def file_url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        from huggingface_hub import hf_hub_url

        url: str = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        # hf_hub_url only swaps the endpoint it saw at import; make sure ours is used.
        if not url.startswith(self.endpoint):
            url = self.endpoint + url[url.index(f"/{repo_id}/resolve/"):]
        return url

    def file_info(self, repo_id: str, filename: str, revision: str = "main") -> RemoteFile:
        from huggingface_hub import get_hf_file_metadata

        """HEAD the file: size, LFS sha256, commit. Raises DownloadError subclasses or RetryableError."""
        self.check_online()
        url = self.file_url(repo_id, filename, revision)
        token = self.token
        try:
            meta = get_hf_file_metadata(
                url, token=token or False, timeout=self.timeout, endpoint=self.endpoint
            )
        except Exception as exc:  # noqa: BLE001 - mapped to user-facing errors
            raise map_error(exc, repo_id, filename, revision, had_token=bool(token)) from exc
        if meta.size is None or meta.etag is None:
            raise NetworkError(
                f"The server at {self.endpoint} did not say how big {filename} is; it does not "
                "look like Hugging Face. Check the endpoint setting."
            )
        etag = meta.etag.strip('"')
        sha = etag if _SHA256.match(etag) else None
        return RemoteFile(repo_id, filename, revision, url, meta.size, sha, meta.commit_hash, etag)

    def list_files(self, repo_id: str, revision: str = "main") -> list[RemoteEntry]:
        from huggingface_hub import HfApi

        """Every file of the repository with its size and LFS sha256 (the catalog refresh)."""
        self.check_online("refresh the model list")
        token = self.token
        api = HfApi(endpoint=self.endpoint, token=token or False)
        try:
            items = list(api.list_repo_tree(repo_id, revision=revision, recursive=True))
        except Exception as exc:  # noqa: BLE001 - mapped to user-facing errors
            raise map_error(exc, repo_id, None, revision, had_token=bool(token)) from exc
        out: list[RemoteEntry] = []
        for item in items:
            size: Any = getattr(item, "size", None)
            if size is None:  # a folder
                continue
            lfs = getattr(item, "lfs", None)
            sha = getattr(lfs, "sha256", None) if lfs is not None else None
            out.append(RemoteEntry(item.path, int(size), sha))
        return out


def map_error(
    exc: BaseException, repo_id: str, filename: str | None, revision: str, *, had_token: bool
) -> Exception:
    """Turn huggingface_hub/httpx errors into the app's errors (or RetryableError)."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return OfflineError()
    if isinstance(exc, GatedRepoError):
        status = exc.response.status_code if exc.response is not None else 401
        return AuthRequiredError(repo_id, status, had_token)
    if isinstance(exc, (RevisionNotFoundError, RemoteEntryNotFoundError)):
        return NotFoundError(repo_id, filename, revision)
    if isinstance(exc, RepositoryNotFoundError):
        status = exc.response.status_code if exc.response is not None else 404
        if status in (401, 403) and not had_token:
            return AuthRequiredError(repo_id, status, had_token)
        return NotFoundError(repo_id, None, revision)
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status_error(status, repo_id, filename, revision, had_token=had_token)
    if isinstance(exc, (httpx2.TransportError, OSError)):
        return RetryableError(f"{type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def status_error(
    status: int, repo_id: str, filename: str | None, revision: str, *, had_token: bool
) -> Exception:
    """The error for a bare HTTP status (GET answers are not parsed by huggingface_hub)."""
    if status in (401, 403):
        return AuthRequiredError(repo_id, status, had_token)
    if status == 404:
        return NotFoundError(repo_id, filename, revision)
    if status in (408, 429) or status >= 500:
        return RetryableError(f"HTTP {status}")
    return NetworkError(
        f"Hugging Face answered HTTP {status} for {filename or repo_id}. Try again later."
    )
