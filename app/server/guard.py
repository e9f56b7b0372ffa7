"""Who may call the server and how much they may send: API key and body size, before any route."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", "/v1/health"})  # as llama-server: health needs no key


def error_body(message: str, kind: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


async def _reply(send: Send, status: int, body: dict[str, Any],
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: Bearer key compared in constant time (401), body cap (413)."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self._max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if (self._key is not None and scope.get("method") != "OPTIONS"
                and scope.get("path") not in OPEN_PATHS and not self._authorized(headers)):
            await _reply(send, 401, error_body("Invalid or missing API key.",
                                               "authentication_error", "invalid_api_key"),
                         [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max:
            await self._too_large(send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._too_large(send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self._key is not None
        auth = headers.get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        given = token.strip() if scheme.lower() == b"bearer" else headers.get(b"x-api-key", b"")
        return hmac.compare_digest(given, self._key)

    async def _too_large(self, send: Send) -> None:
        await _reply(send, 413, error_body(f"The request body is larger than "
                                           f"{self._max // (1024 * 1024)} MB.",
                                           "invalid_request_error", "request_too_large"))
