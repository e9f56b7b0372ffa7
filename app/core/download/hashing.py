"""sha256 of downloaded and imported files: while they are written, or after, in big blocks."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from app.core.download.errors import ChecksumError, DownloadCancelled, DownloadError

HASH_BLOCK = 8 << 20  # hashlib drops the GIL on big blocks


class TailHasher:
    """sha256 of a file that another thread is appending to, computed in its own thread.

    hashlib releases the GIL on large blocks, so hashing overlaps with receiving and writing; the
    hasher reads the bytes back from the page cache and never holds more than one block in memory.
    """

    def __init__(self, path: Path, available: int = 0) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._available = available
        self._final = False
        self._stop = False
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="download-sha256", daemon=True)
        self._thread.start()

    def advance(self, available: int) -> None:
        """Bytes [0, available) are on disk now."""
        with self._cond:
            self._available = available
            self._cond.notify()

    def finish(self, total: int) -> str:
        """Wait for the last bytes to be hashed; the hex digest."""
        with self._cond:
            self._available = total
            self._final = True
            self._cond.notify()
        self._thread.join()
        if self._error is not None:
            raise DownloadError(
                f"Could not read back {self._path.name} to check it ({self._error}). "
                "Press Resume to try again."
            )
        return self._digest.hexdigest()

    def abort(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._path.open("rb", buffering=0) as f:
                buf = bytearray(HASH_BLOCK)
                view = memoryview(buf)
                while True:
                    with self._cond:
                        while not self._stop and not self._final and self._hashed >= self._available:
                            self._cond.wait()
                        if self._stop or (self._final and self._hashed >= self._available):
                            return
                        target = self._available
                    while self._hashed < target:
                        n = f.readinto(view[: min(HASH_BLOCK, target - self._hashed)])
                        if not n:
                            raise OSError("the file is shorter than the bytes written")
                        self._digest.update(view[:n])
                        self._hashed += n
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self._error = exc


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
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
    return digest.hexdigest()


def verify_file(path: Path, expected_sha256: str, cancel: threading.Event | None = None) -> None:
    """Raise ChecksumError (and delete the file) if its bytes do not hash to ``expected_sha256``."""
    actual = sha256_file(path, cancel=cancel)
    if actual != expected_sha256.lower():
        path.unlink(missing_ok=True)
        raise ChecksumError(path.name, expected_sha256, actual)
