"""A resumable, verified file download from the Hub over plain HTTP range requests.

Why not ``hf_hub_download``: it cannot be paused or cancelled from another thread, resumes from its
last flushed chunk rather than the exact byte, writes into the HF cache layout instead of our models
folder, and does not check the sha256. We use huggingface_hub for what it is good at (URLs, metadata,
errors, its shared HTTP client and proxy settings) and stream the bytes ourselves.

On disk while downloading: ``<dest>.part`` (the bytes so far, appended in order, so its size is the
resume offset even after a SIGKILL) and ``<dest>.part.json`` (what the bytes belong to; a different
sha256/size on the server means the partial file is stale and is discarded).
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.core.download.errors import (
    ChecksumError,
    DiskSpaceError,
    DownloadCancelled,
    DownloadPaused,
    NetworkError,
)
from app.core.download.hashing import TailHasher
from app.core.download.http_stream import open_stream
from app.core.download.hub import HubClient, RemoteFile, RetryableError, status_error
from app.core.download.meter import Meter, ProgressFn

CHUNK = 1 << 20  # bytes per socket read while downloading
USER_AGENT = "gemma-desktop (huggingface_hub compatible downloader)"
# Room left on the disk after the download, so the app can still write its history and logs.
DISK_RESERVE = 64 << 20

T = TypeVar("T")


FreeSpaceFn = Callable[[Path], int]


@dataclass
class RetryPolicy:
    """How hard to try: attempts without progress, backoff, and the stall (read) timeout."""

    max_retries: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    read_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


class Downloader:
    """Downloads one Hub file to a path: progress, pause/cancel events, retries, resume, sha256."""

    def __init__(
        self,
        hub: HubClient | None = None,
        retry: RetryPolicy | None = None,
        free_space: FreeSpaceFn = disk_free,
        progress_interval: float = 0.25,
    ) -> None:
        self.hub = hub or HubClient()
        self.retry = retry or RetryPolicy()
        self.free_space = free_space
        self.progress_interval = progress_interval

    def info(
        self, repo_id: str, filename: str, revision: str = "main",
        cancel: threading.Event | None = None,
    ) -> RemoteFile:
        """The file's metadata from the Hub, retried like the download itself."""
        return self._with_retries(
            lambda: self.hub.file_info(repo_id, filename, revision), cancel, None
        )

    def fetch(
        self,
        repo_id: str,
        filename: str,
        dest: Path,
        revision: str = "main",
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        remote: RemoteFile | None = None,
    ) -> RemoteFile:
        """Download into ``dest`` (atomically, after the sha256 matched); returns what was fetched.

        Raises DownloadPaused (partial kept), DownloadCancelled (partial deleted) or another
        DownloadError with a message for the user.
        """
        self.hub.check_online()
        if remote is None:
            remote = self.info(repo_id, filename, revision, cancel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        meta_path = dest.with_name(dest.name + ".part.json")
        have = _usable_partial(part, meta_path, remote)
        needed = remote.size - have + DISK_RESERVE
        free = self.free_space(dest.parent)
        if free < needed:
            raise DiskSpaceError(str(dest.parent), needed, free)
        _write_json(meta_path, asdict(remote))

        part.touch()
        # The sha256 is computed by a thread that follows the file as it grows (the bytes of an
        # earlier attempt first), so verifying costs almost nothing after the last byte lands.
        state = _Partial(have, TailHasher(part, have))
        try:
            self._transfer(remote, part, meta_path, state, on_progress, cancel, pause)
            actual = state.hasher.finish(state.have)
        finally:
            state.hasher.abort()
        if remote.sha256 is not None and actual != remote.sha256:
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise ChecksumError(filename, remote.sha256, actual)
        os.replace(part, dest)
        meta_path.unlink(missing_ok=True)
        return remote

    def _transfer(
        self, remote: RemoteFile, part: Path, meta_path: Path, state: _Partial,
        on_progress: ProgressFn | None, cancel: threading.Event | None,
        pause: threading.Event | None,
    ) -> None:
        """GET until every byte is on disk, retrying with backoff; raises on pause and cancel."""
        meter = Meter(remote.size, state.have, on_progress, self.progress_interval)
        try:
            self._transfer_with(meter, remote, part, meta_path, state, cancel, pause)
        finally:
            meter.close()

    def _transfer_with(
        self, meter: Meter, remote: RemoteFile, part: Path, meta_path: Path, state: _Partial,
        cancel: threading.Event | None, pause: threading.Event | None,
    ) -> None:
        meter.update(state.have, force=True)
        attempts = 0
        while state.have < remote.size:
            self._check_events(cancel, pause, part, meta_path, state.have, remote.size)
            before = state.have
            try:
                self._stream(remote, part, state, meter, cancel, pause)
            except RetryableError as exc:
                if state.have > before:
                    attempts = 0  # progress was made: a flaky link, not a dead one
                attempts += 1
                if attempts > self.retry.max_retries:
                    raise NetworkError(
                        f"Downloading {remote.filename} kept failing ({exc}). Check the network "
                        "connection "
                        "and press Resume: the download continues where it stopped."
                    ) from exc
                self._backoff(attempts, cancel, pause, part, meta_path, state.have, remote.size)
                meter.restart(state.have)
        meter.update(state.have, force=True)

    # ----- one HTTP attempt --------------------------------------------------------------------
    def _stream(
        self,
        remote: RemoteFile,
        part: Path,
        state: _Partial,
        meter: Meter,
        cancel: threading.Event | None,
        pause: threading.Event | None,
    ) -> None:
        """One GET from ``state.have`` on; ``state`` is updated as bytes land, even if it raises."""
        have = state.have
        headers = {**self.hub.auth_headers(), "Accept-Encoding": "identity",
                   "User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with open_stream(
                remote.url, headers, connect_timeout=self.retry.connect_timeout_s,
                read_timeout=self.retry.read_timeout_s,
            ) as resp:
                if resp.status == 416 and have >= remote.size:
                    return
                if resp.status >= 400:
                    raise status_error(
                        resp.status, remote.repo_id, remote.filename, remote.revision,
                        had_token="authorization" in headers,
                    )
                if have and resp.status != 206:
                    # The server ignored the range: start over rather than corrupt the file.
                    state.hasher.abort()
                    have = state.have = 0
                    part.write_bytes(b"")
                    state.hasher = TailHasher(part)
                view = memoryview(bytearray(CHUNK))
                with part.open("ab", buffering=0) as f:
                    while have < remote.size:
                        n = resp.read_into(view[: min(CHUNK, remote.size - have)])
                        if not n:
                            break
                        _write_all(f, view[:n], part, remote.size - have, self.free_space)
                        have = state.have = have + n
                        state.hasher.advance(have)
                        meter.update(have)
                        if _event_set(cancel) or _event_set(pause):
                            return
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc or 'connection lost'}") from exc
        if have < remote.size and not _event_set(cancel) and not _event_set(pause):
            raise RetryableError("the connection closed early")

    # ----- helpers -----------------------------------------------------------------------------
    def _check_events(
        self, cancel: threading.Event | None, pause: threading.Event | None,
        part: Path, meta_path: Path, have: int, total: int,
    ) -> None:
        if _event_set(cancel):
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise DownloadCancelled()
        if _event_set(pause):
            raise DownloadPaused(have, total)

    def _backoff(
        self, attempt: int, cancel: threading.Event | None, pause: threading.Event | None,
        part: Path, meta_path: Path, have: int, total: int,
    ) -> None:
        delay = min(self.retry.backoff_s * 2 ** (attempt - 1), self.retry.max_backoff_s)
        end = time.monotonic() + delay
        while (left := end - time.monotonic()) > 0:
            self._check_events(cancel, pause, part, meta_path, have, total)
            time.sleep(min(left, 0.05))
        self._check_events(cancel, pause, part, meta_path, have, total)

    def _with_retries(
        self, call: Callable[[], T], cancel: threading.Event | None, what: str | None
    ) -> T:
        attempt = 0
        while True:
            try:
                return call()
            except RetryableError as exc:
                attempt += 1
                if attempt > self.retry.max_retries:
                    raise NetworkError(
                        f"Could not reach Hugging Face ({exc}). Check the network connection and "
                        "try again."
                    ) from exc
                if _event_set(cancel):
                    raise DownloadCancelled() from exc
                time.sleep(min(self.retry.backoff_s * 2 ** (attempt - 1), self.retry.max_backoff_s))


@dataclass
class _Partial:
    """Bytes on disk so far and their running sha256."""

    have: int
    hasher: Any


def _event_set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def _usable_partial(part: Path, meta_path: Path, remote: RemoteFile) -> int:
    """Bytes of a partial download that belong to this exact remote file (0 if none or stale)."""
    try:
        meta = json.loads(meta_path.read_text())
        size = part.stat().st_size
    except (OSError, ValueError):
        part.unlink(missing_ok=True)
        return 0
    same = (
        meta.get("size") == remote.size
        and meta.get("sha256") == remote.sha256
        and meta.get("etag") == remote.etag
    )
    if not same or size > remote.size:
        part.unlink(missing_ok=True)
        return 0
    return size


def _write_all(
    f: Any, data: memoryview, part: Path, still_needed: int, free_space: FreeSpaceFn
) -> None:
    """Write every byte (raw writes may be short); a full disk becomes DiskSpaceError."""
    try:
        while data:
            written = f.write(data)
            data = data[written:]
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskSpaceError(str(part.parent), still_needed, free_space(part.parent)) from exc
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
