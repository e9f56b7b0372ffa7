"""A read-only, seekable file over HTTP range requests, so a GGUF header can be parsed before download."""

from __future__ import annotations

import io
import re
from collections import OrderedDict
from typing import Any

from app.core.download.errors import NetworkError, OfflineError
from app.core.download.hub import HubClient, env_offline, status_error

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RemoteRangeFile(io.RawIOBase):
    """File-like view of a remote file: reads become ``Range`` GETs of whole blocks, kept in an LRU.

    A GGUF header (a few hundred KiB of metadata, read in many tiny pieces) costs a handful of
    requests with the default 1 MiB blocks.
    """

    def __init__(
        self,
        url: str,
        *,
        size: int | None = None,
        headers: dict[str, str] | None = None,
        block_size: int = 1 << 20,
        max_blocks: int = 32,
        timeout: float = 15.0,
        retries: int = 3,
        label: str | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__()
        if offline if offline is not None else env_offline():
            raise OfflineError("read the model file from Hugging Face")
        self.url = url
        self.headers = dict(headers or {})
        self.block_size = block_size
        self.max_blocks = max_blocks
        self.timeout = timeout
        self.retries = retries
        self.label = label or url.rsplit("/", 1)[-1]
        self.requests_made = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self._size = size if size is not None else self._probe_size()

    @classmethod
    def from_hub(
        cls, repo_id: str, filename: str, revision: str = "main",
        hub: HubClient | None = None, **kwargs: Any,
    ) -> RemoteRangeFile:
        """Open a Hub file (HEAD for its size; raises the app's DownloadError subclasses)."""
        hub = hub or HubClient()
        remote = hub.file_info(repo_id, filename, revision)
        return cls(
            remote.url, size=remote.size, headers=hub.auth_headers(), label=filename,
            offline=hub.offline, **kwargs,
        )

    # ----- io.RawIOBase ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(self._size - self._pos, 0))
        if want <= 0:
            return 0
        first = self._pos // self.block_size
        last = (self._pos + want - 1) // self.block_size
        self._ensure(first, last)
        written = 0
        for index in range(first, last + 1):
            block = self._blocks[index]
            self._blocks.move_to_end(index)
            start = self._pos + written - index * self.block_size
            piece = block[start : start + want - written]
            view[written : written + len(piece)] = piece
            written += len(piece)
        self._pos += written
        return written

    # ----- HTTP ------------------------------------------------------------------------------
    def _ensure(self, first: int, last: int) -> None:
        """Fetch the missing blocks of [first, last] with as few requests as possible."""
        index = first
        while index <= last:
            if index in self._blocks:
                self._blocks.move_to_end(index)  # needed now: not to be evicted below
                index += 1
                continue
            run_end = index
            while run_end + 1 <= last and run_end + 1 not in self._blocks:
                run_end += 1
            start = index * self.block_size
            end = min((run_end + 1) * self.block_size, self._size)
            data = self._get(start, end)
            for i in range(index, run_end + 1):
                lo = (i - index) * self.block_size
                self._blocks[i] = data[lo : lo + self.block_size]
            index = run_end + 1
        while len(self._blocks) > max(self.max_blocks, last - first + 1):
            self._blocks.popitem(last=False)

    def _get(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the remote file, retried on drops and 5xx."""
        headers = {**self.headers, "Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        error: Exception | None = None
        for _ in range(self.retries + 1):
            self.requests_made += 1
            import httpx2  # imported on use: ~0.2 s off the app's start
            from huggingface_hub import get_session
            try:
                resp = get_session().get(self.url, headers=headers, timeout=self.timeout)
            except httpx2.TransportError as exc:
                error = exc
                continue
            if resp.status_code == 206:
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                if match and int(match.group(1)) == start and len(resp.content) == end - start:
                    return resp.content
                error = NetworkError(f"The server sent the wrong bytes for {self.label}.")
                continue
            if resp.status_code == 200 and start == 0 and len(resp.content) >= end:
                return resp.content[:end]  # a server without ranges, tiny file
            mapped = status_error(
                resp.status_code, self.label, None, "main", had_token="authorization" in self.headers
            )
            if resp.status_code < 500:
                raise mapped
            error = mapped
        raise NetworkError(
            f"Could not read {self.label} from Hugging Face ({error}). Check the network connection."
        )

    def _probe_size(self) -> int:
        headers = {**self.headers, "Range": "bytes=0-0", "Accept-Encoding": "identity"}
        self.requests_made += 1
        import httpx2  # imported on use: ~0.2 s off the app's start
        from huggingface_hub import get_session
        try:
            resp = get_session().get(self.url, headers=headers, timeout=self.timeout)
        except httpx2.TransportError as exc:
            raise NetworkError(f"Could not reach {self.url} ({exc}).") from exc
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if resp.status_code == 206 and match and match.group(3) != "*":
            return int(match.group(3))
        if resp.status_code == 200:
            return len(resp.content)
        raise status_error(resp.status_code, self.label, None, "main", had_token=False)
