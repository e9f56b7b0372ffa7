"""Hugging Face downloads: resumable, verified, pausable; the models folder; remote GGUF reads."""

from __future__ import annotations

from app.core.download.errors import (
    AuthRequiredError,
    ChecksumError,
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    DownloadPaused,
    NetworkError,
    NotFoundError,
    OfflineError,
    UnsafeNameError,
)
from app.core.download.fetch import Downloader, RetryPolicy
from app.core.download.hashing import sha256_file, verify_file
from app.core.download.hub import (
    HubClient,
    RemoteEntry,
    RemoteFile,
    delete_token,
    env_offline,
    get_token,
    save_token,
)
from app.core.download.meter import Progress
from app.core.download.remote_file import RemoteRangeFile
from app.core.download.store import InstalledModel, ModelStore

__all__ = [
    "AuthRequiredError",
    "ChecksumError",
    "UnsafeNameError",
    "DiskSpaceError",
    "DownloadCancelled",
    "DownloadError",
    "DownloadPaused",
    "Downloader",
    "HubClient",
    "InstalledModel",
    "ModelStore",
    "NetworkError",
    "NotFoundError",
    "OfflineError",
    "Progress",
    "RemoteEntry",
    "RemoteFile",
    "RemoteRangeFile",
    "RetryPolicy",
    "delete_token",
    "env_offline",
    "get_token",
    "save_token",
    "sha256_file",
    "verify_file",
]
