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
import hashlib
import json
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import get_session

from app.core.download.errors import (
    ChecksumError,
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    DownloadPaused,
    NetworkError,
)
from app.core.download.hub import HubClient, RemoteFile, RetryableError, status_error

HASH_BLOCK = 8 << 20
# Room left on the disk after the download, so the app can still write its history and logs.
DISK_RESERVE = 64 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """Bytes so far out of total, the recent speed and the time left (-1 when not known yet)."""

    done: int
    total: int
    bytes_per_s: float
    eta_s: float


ProgressFn = Callable[[Progress], None]
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


class _Meter:
    """Throttled progress with speed over a sliding window of the last few seconds."""

    def __init__(self, total: int, start: int, fn: ProgressFn | None, interval: float) -> None:
        self.total = total
        self.fn = fn
        self.interval = interval
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), start)])
        self.last_emit = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.fn is None or (not force and now - self.last_emit < self.interval):
            return
        self.last_emit = now
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        speed = (done - d0) / (now - t0) if now > t0 else 0.0
        eta = (self.total - done) / speed if speed > 0 else -1.0
        self.fn(Progress(done, self.total, speed, eta))

    def restart(self, done: int) -> None:
        """After a retry wait, so the pause does not read as a slow connection forever."""
        self.samples = deque([(time.monotonic(), done)])


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

        state = _Partial(have, hashlib.sha256())
        if have:
            _hash_into(state.hasher, part, have, cancel)
        meter = _Meter(remote.size, have, on_progress, self.progress_interval)
        meter.update(have, force=True)
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
                        f"Downloading {filename} kept failing ({exc}). Check the network connection "
                        "and press Resume: the download continues where it stopped."
                    ) from exc
                self._backoff(attempts, cancel, pause, part, meta_path, state.have, remote.size)
                meter.restart(state.have)
        meter.update(state.have, force=True)
        actual = state.hasher.hexdigest()
        if remote.sha256 is not None and actual != remote.sha256:
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise ChecksumError(filename, remote.sha256, actual)
        os.replace(part, dest)
        meta_path.unlink(missing_ok=True)
        return remote

    # ----- one HTTP attempt --------------------------------------------------------------------
    def _stream(
        self,
        remote: RemoteFile,
        part: Path,
        state: _Partial,
        meter: _Meter,
        cancel: threading.Event | None,
        pause: threading.Event | None,
    ) -> None:
        """One GET from ``state.have`` on; ``state`` is updated as bytes land, even if it raises."""
        have = state.have
        headers = {**self.hub.auth_headers(), "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        timeout = httpx2.Timeout(
            self.retry.connect_timeout_s, read=self.retry.read_timeout_s,
        )
        try:
            with get_session().stream("GET", remote.url, headers=headers, timeout=timeout) as resp:
                status = resp.status_code
                if status == 416 and have >= remote.size:
                    return
                if status >= 400:
                    raise status_error(
                        status, remote.repo_id, remote.filename, remote.revision,
                        had_token="authorization" in headers,
                    )
                if have and status != 206:
                    # The server ignored the range: start over rather than corrupt the file.
                    have = state.have = 0
                    state.hasher = hashlib.sha256()
                mode = "ab" if have else "wb"
                with part.open(mode, buffering=0) as f:
                    for chunk in resp.iter_raw():
                        if have + len(chunk) > remote.size:
                            chunk = chunk[: remote.size - have]
                        f.write(chunk)
                        state.hasher.update(chunk)
                        have = state.have = have + len(chunk)
                        meter.update(have)
                        if _event_set(cancel) or _event_set(pause):
                            return
                        if have >= remote.size:
                            break
        except (httpx2.TransportError, httpx2.StreamError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc or 'connection lost'}") from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                free = self.free_space(part.parent)
                raise DiskSpaceError(str(part.parent), remote.size - have, free) from exc
            raise
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


def _hash_into(hasher: Any, path: Path, length: int, cancel: threading.Event | None) -> None:
    with path.open("rb") as f:
        left = length
        while left > 0:
            block = f.read(min(HASH_BLOCK, left))
            if not block:
                raise DownloadError(f"{path.name} shrank while resuming; press Resume again.")
            hasher.update(block)
            left -= len(block)
            if _event_set(cancel):
                raise DownloadCancelled()


def sha256_file(
    path: Path,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """The sha256 of a file, read in 8 MiB blocks (hashlib drops the GIL on big blocks)."""
    total = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with path.open("rb", buffering=0) as f:
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
            done += n
            if on_progress is not None:
                on_progress(done, total)
            if _event_set(cancel):
                raise DownloadCancelled()
    return digest.hexdigest()


def verify_file(path: Path, expected_sha256: str, cancel: threading.Event | None = None) -> None:
    """Raise ChecksumError (and delete the file) if its bytes do not hash to ``expected_sha256``."""
    actual = sha256_file(path, cancel=cancel)
    if actual != expected_sha256.lower():
        path.unlink(missing_ok=True)
        raise ChecksumError(path.name, expected_sha256, actual)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
