"""Streaming GET over the stdlib's http.client, for the bytes of large files.

Why not httpx (huggingface_hub's client, still used for metadata and listings): measured on the
local hub, httpx streams a body at ~300 MiB/s in 64 KiB pieces, http.client at ~1.9 GB/s with 1 MiB
reads (benchmarks/download.py). A model download should cost the disk's speed, not the client's.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from urllib.parse import urljoin, urlsplit

_REDIRECTS = {301, 302, 303, 307, 308}


@cache
def _tls() -> ssl.SSLContext:
    try:
        import certifi  # what httpx (and so huggingface_hub) trusts, for the same behaviour

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


@dataclass
class BodyStream:
    """An open response: status, lower-cased headers, and ``readinto`` for the body."""

    status: int
    headers: dict[str, str]
    url: str
    _conn: http.client.HTTPConnection
    _resp: http.client.HTTPResponse

    def read_into(self, view: memoryview) -> int:
        """Like ``read_some`` but into a reusable buffer (no allocation per chunk); 0 at the end."""
        resp = self._resp
        if resp.chunked or resp.length is None or resp.fp is None:
            data = self.read_some(len(view))
            view[: len(data)] = data
            return len(data)
        if resp.length == 0:
            return 0
        n = resp.fp.readinto1(view[: resp.length])
        if n == 0:  # closed before Content-Length was reached
            raise http.client.IncompleteRead(b"", resp.length)
        resp.length -= n
        return n

    def read_some(self, limit: int) -> bytes:
        """Up to ``limit`` body bytes, as soon as any arrive; b"" at the end.

        One socket read, not "fill the buffer": when a stall times out, every byte that did
        arrive has already been handed over (and written), so the resume refetches none of them.
        """
        data = self._resp.read1(limit)
        if not data and self._resp.length:  # closed before Content-Length was reached
            raise http.client.IncompleteRead(b"", self._resp.length)
        return data

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> BodyStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def redirect_headers(origin: str, location: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers for a redirect: the token stays on the first host and never goes https->http."""
    a, b = urlsplit(origin), urlsplit(location)
    if a.netloc == b.netloc and (a.scheme != "https" or b.scheme == "https"):
        return headers
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


def open_stream(
    url: str,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    max_redirects: int = 5,
) -> BodyStream:
    """GET ``url`` and follow redirects; the Authorization header never leaves the first host.

    Raises OSError / http.client.HTTPException on network trouble (the caller retries).
    """
    headers = dict(headers)
    first = url
    for _ in range(max_redirects + 1):
        conn, target = _connect(url, connect_timeout)
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)  # a stall longer than this raises TimeoutError
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        if resp.status in _REDIRECTS and resp.getheader("Location"):
            location = urljoin(url, resp.getheader("Location") or "")
            conn.close()
            headers = redirect_headers(first, location, headers)
            url = location
            continue
        return BodyStream(
            resp.status, {k.lower(): v for k, v in resp.getheaders()}, url, conn, resp
        )
    raise http.client.HTTPException(f"too many redirects for {url}")


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection for ``url`` (through the environment's proxy, if any) and the request target."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = None if urllib.request.proxy_bypass(parts.hostname or "") else (
        urllib.request.getproxies().get(parts.scheme)
    )
    conn: http.client.HTTPConnection
    if proxy:
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if https:
            conn = http.client.HTTPSConnection(
                p.hostname or "", p.port or 8080, timeout=timeout, context=_tls()
            )
            conn.set_tunnel(parts.hostname or "", port)
        else:
            conn = http.client.HTTPConnection(p.hostname or "", p.port or 8080, timeout=timeout)
            target = url  # a plain-HTTP proxy takes the absolute URL
        return conn, target
    if https:
        return http.client.HTTPSConnection(
            parts.hostname or "", port, timeout=timeout, context=_tls()
        ), target
    return http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout), target
