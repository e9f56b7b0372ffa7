"""The server's guard in front of every route: API key (constant-time) and body size, with CORS off."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from app.server.guard import Guard


def _client(key: str | None, max_body: int = 1000) -> TestClient:
    api = FastAPI()

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    api.add_middleware(Guard, api_key=key, max_body_bytes=max_body)
    return TestClient(api)


def test_key_is_required_everywhere_but_health():
    with _client("k3y") as c:
        assert c.get("/health").status_code == 200
        r = c.post("/v1/echo", content=b"x")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.post("/v1/echo", content=b"x", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/v1/echo", content=b"x", headers={"Authorization": "Bearer k3y"}).json() == {"n": 1}


def test_without_a_key_everything_is_open():
    with _client(None) as c:
        assert c.post("/v1/echo", content=b"abc").json() == {"n": 3}


def test_bodies_over_the_cap_are_refused_with_or_without_length():
    with _client(None, max_body=10) as c:
        assert c.post("/v1/echo", content=b"x" * 10).status_code == 200
        r = c.post("/v1/echo", content=b"x" * 11)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        chunked = c.post("/v1/echo", content=iter([b"x" * 8, b"x" * 8]))
        assert chunked.status_code == 413


def test_no_cors_headers_unless_origins_are_listed():
    with _client(None) as c:
        r = c.options("/v1/echo", headers={"Origin": "http://evil.example",
                                           "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
