"""A client that goes away mid-stream stops its generation in the engine at once (real 270M)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.openai_servers import free_port, gemma_serve, running

# The grammar never lets the model end: only max_tokens (minutes away here) or a stop ends it.
ENDLESS = 'root ::= "ab " root'


@pytest.fixture()
def server(model_270m, tmp_path):
    port = free_port()
    cmd = gemma_serve(model_270m, port, "--threads", "2", "--ctx", "4096")
    with running(cmd, "/health", port, tmp_path / "serve.log",
                 {"GEMMA_DESKTOP_HOME": str(tmp_path / "home")}):
        yield f"http://127.0.0.1:{port}"


def _generating(url: str) -> int:
    return int(httpx.get(url + "/health", timeout=5).json()["generating"])


@pytest.mark.parametrize("path,body", [
    ("/v1/completions", {"prompt": "Once upon a time"}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell a story."}]}),
])
def test_disconnect_stops_the_generation(server, path, body):
    request = {**body, "max_tokens": 3000, "stream": True, "grammar": ENDLESS}
    with httpx.Client(timeout=60) as client, \
            client.stream("POST", server + path, json=request) as response:
        assert response.status_code == 200
        chunks = 0
        for line in response.iter_lines():
            chunks += line.startswith("data: {")
            if chunks >= 3:
                break
        assert _generating(server) == 1
    # The stream is closed: the engine must end the answer now, not after 2,000 more tokens.
    deadline = time.monotonic() + 15
    while _generating(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _generating(server) == 0
