"""A client that goes away mid-stream stops its generation in the engine at once (real 270M)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.openai_servers import free_port, gemma_serve, running

# The grammar never lets the model end: only max_tokens (minutes away here) or a stop ends it.
ENDLESS = 'root ::= "ab " root'
MODEL = "gemma3-270m-q4_k_m.gguf"


@pytest.fixture()
def server(model_270m, tmp_path):
    port = free_port()
    cmd = gemma_serve(model_270m, port, "--threads", "2", "--ctx", "4096")
    with running(cmd, "/health", port, tmp_path / "serve.log",
                 {"GEMMA_DESKTOP_HOME": str(tmp_path / "home")}):
        yield f"http://127.0.0.1:{port}"


def _generating(url: str) -> int:
    return int(httpx.get(url + "/health", timeout=5).json()["generating"])


@pytest.mark.parametrize("kind", ["completions", "chat"])
def test_disconnect_stops_the_generation(server, kind):
    from openai import OpenAI

    client = OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)
    extra = {"grammar": ENDLESS}
    if kind == "completions":
        stream = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=3000,
                                           stream=True, extra_body=extra)
    else:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell a story."}],
            max_tokens=3000, stream=True, extra_body=extra)
    for n, _chunk in enumerate(stream):
        if n >= 3:
            break
    assert _generating(server) == 1
    stream.close()  # the client goes away mid-answer
    # The stream is closed: the engine must end the answer now, not after 2,000 more tokens.
    deadline = time.monotonic() + 15
    while _generating(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _generating(server) == 0
