"""The official `openai` client against `main.py serve` on the synthetic Gemma 4 (real engine host)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from PIL import Image

from app.core.engine.records import SamplingParams
from app.core.remote.client import Endpoint, RemoteChat, RemoteError
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.openai_servers import free_port, gemma_serve, running

KEY = "test-key-0123"
# Random weights give random text; the grammar pins Gemma 4's shape while the model really runs.
THINK_THEN_ANSWER = 'root ::= "<|channel>thought\\n" "plan it" "<channel|>" "Hello there"'
SHORT = 'root ::= "Fine" " " "thanks"'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    files = synthetic_gemma4()
    port = free_port()
    home = tmp_path_factory.mktemp("serve-home")
    log = home / "serve.log"
    cmd = gemma_serve(files["model"], port, "--mmproj", str(files["mmproj"]), "--api-key", KEY,
                      "--threads", "2")
    with running(cmd, "/health", port, log, {"GEMMA_DESKTOP_HOME": str(home)}):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture()
def client(server):
    with openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=60) as c:
        yield c


def test_models_lists_the_loaded_model(client):
    models = client.models.list().data
    assert models[0].id == "synthetic-gemma4.gguf" and models[0].model_extra["loaded"] is True


def test_reasoning_is_kept_apart_from_content_with_usage(client):
    r = client.chat.completions.create(
        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Hi"}],
        max_tokens=40, reasoning_effort="high", extra_body={"grammar": THINK_THEN_ANSWER})
    msg = r.choices[0].message
    assert msg.content == "Hello there"
    assert msg.model_extra["reasoning_content"] == "plan it"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens is not None


def test_streamed_chat_with_usage_chunk(client):
    stream = client.chat.completions.create(
        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Hi"}],
        max_tokens=40, stream=True, stream_options={"include_usage": True},
        extra_body={"grammar": THINK_THEN_ANSWER, "chat_template_kwargs": {"enable_thinking": True}})
    content, reasoning, reasons, usage = "", "", [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    assert (reasoning, content, reasons) == ("plan it", "Hello there", ["stop"])
    assert usage is not None and usage.completion_tokens > 0


def test_thinking_off_gives_no_reasoning_and_max_tokens_gives_length(client):
    r = client.chat.completions.create(
        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Hi"}],
        max_completion_tokens=3, temperature=0.7, top_p=0.9, seed=5,
        extra_body={"top_k": 20, "min_p": 0.05})
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    assert "reasoning_content" not in (r.choices[0].message.model_extra or {})


def test_stop_sequence_cuts_the_answer(client):
    r = client.chat.completions.create(
        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Hi"}],
        max_tokens=20, stop=[" th"], extra_body={"grammar": SHORT})
    assert r.choices[0].message.content == "Fine" and r.choices[0].finish_reason == "stop"


def test_json_schema_gives_json_that_fits(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    r = client.chat.completions.create(
        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "ok?"}],
        max_tokens=60, seed=1,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    data = json.loads(r.choices[0].message.content)
    assert isinstance(data["ok"], bool) and set(data) == {"ok"}


def _png() -> str:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _wav() -> str:
    t = np.arange(16000) / 16000
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="WAV")
    return base64.b64encode(buf.getvalue()).decode()


def test_image_and_audio_travel_into_the_prompt(client):
    base = client.chat.completions.create(
        model="synthetic-gemma4.gguf", max_tokens=2,
        messages=[{"role": "user", "content": "Describe."}])
    r = client.chat.completions.create(
        model="synthetic-gemma4.gguf", max_tokens=2,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe."},
            {"type": "image_url", "image_url": {"url": _png()}},
            {"type": "input_audio", "input_audio": {"data": _wav(), "format": "wav"}}]}])
    # The picture and the clip became media tokens of the prompt, not text.
    assert r.usage.prompt_tokens > base.usage.prompt_tokens + 10


def test_bad_input_is_a_4xx_in_openais_shape(client):
    with pytest.raises(openai.BadRequestError, match="Only data: URLs"):
        client.chat.completions.create(model="synthetic-gemma4.gguf", messages=[
            {"role": "user", "content": [{"type": "image_url",
                                          "image_url": {"url": "file:///etc/passwd"}}]}])
    with pytest.raises(openai.BadRequestError, match="n"):
        client.chat.completions.create(model="synthetic-gemma4.gguf", n=2,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="synthetic-gemma4.gguf", messages=[])
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model="synthetic-gemma4.gguf", stream=True,
                                       messages=[{"role": "user", "content": "word " * 2000}])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_without_the_key_401(server):
    with openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0) as c, \
            pytest.raises(openai.AuthenticationError):
        c.models.list()
    assert httpx.get(server + "/health").status_code == 200


def test_completions_tokenize_and_template(server, client):
    r = client.completions.create(model="synthetic-gemma4.gguf", prompt="Once", max_tokens=4)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 4
    auth = {"Authorization": f"Bearer {KEY}"}
    tok = httpx.post(server + "/tokenize", json={"content": "Hello world", "with_pieces": True},
                     headers=auth).json()["tokens"]
    assert "".join(t["piece"] for t in tok) == "Hello world"
    prompt = httpx.post(server + "/apply-template", headers=auth,
                        json={"messages": [{"role": "user", "content": "Hi"}]}).json()["prompt"]
    assert prompt.startswith("<bos><|turn>user\nHi<turn|>") and prompt.endswith("<|turn>model\n"
                                                                                  "<|channel>thought\n<channel|>")


def test_the_apps_remote_client_sends_attached_files_inline(server, tmp_path):
    image, clip = tmp_path / "photo.png", tmp_path / "voice.wav"
    image.write_bytes(base64.b64decode(_png().split(",", 1)[1]))
    clip.write_bytes(base64.b64decode(_wav()))
    text = {"type": "text", "text": "Describe."}
    with RemoteChat(Endpoint(server, KEY)) as chat:
        plain = chat.chat("synthetic-gemma4.gguf", [{"role": "user", "content": [text]}],
                          stream=False, params=SamplingParams(max_tokens=2))
        media = chat.chat("synthetic-gemma4.gguf", [{"role": "user", "content": [
            text, {"type": "image", "path": str(image)}, {"type": "audio", "path": str(clip)}]}],
            params=SamplingParams(max_tokens=2))
    assert plain.stats is not None and media.stats is not None
    assert media.stats.prompt_tokens > plain.stats.prompt_tokens + 10


def test_the_apps_remote_client_against_serve(server):
    with RemoteChat(Endpoint(server, KEY)) as chat:
        assert chat.models()[0] == "synthetic-gemma4.gguf"
        reply = chat.chat("synthetic-gemma4.gguf", [{"role": "user", "content": "Hi"}], True,
                          SamplingParams(max_tokens=40, grammar=THINK_THEN_ANSWER))
        assert (reply.thinking, reply.answer) == ("plan it", "Hello there")
        assert reply.stats is not None and reply.stats.prompt_tokens > 0
        with pytest.raises(RemoteError) as err:
            chat.chat("no-such-model", [{"role": "user", "content": "Hi"}])
        assert err.value.kind == "model"
    with RemoteChat(Endpoint(server, "bad")) as chat, pytest.raises(RemoteError) as err:
        chat.chat("synthetic-gemma4.gguf", [{"role": "user", "content": "Hi"}])
    assert err.value.kind == "auth" and "401" in err.value.message
