"""Images and audio through the real engine host into the synthetic Gemma 4 (libmtmd), and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.engine.blocking import BlockingEngine
from app.core.engine.messages import LoadModel
from app.core.engine.prompt_cache import MIN_CHUNK
from app.core.engine.records import EngineError, GenerationStats, SamplingParams
from tests.fixtures.gemma4 import synthetic_gemma4

ROOT = Path(__file__).resolve().parents[2]
PARAMS = SamplingParams(temperature=0.0, max_tokens=6)


@pytest.fixture(scope="module")
def gemma4() -> dict[str, Path]:
    return synthetic_gemma4()


@pytest.fixture()
def host(gemma4):
    with BlockingEngine() as engine:
        engine.start()
        info = engine.load(LoadModel(str(gemma4["model"]), str(gemma4["mmproj"]), n_ctx=4096, n_threads=2))
        assert info.supports_vision and info.supports_audio
        yield engine


def _run(engine: BlockingEngine, messages: list[dict]) -> GenerationStats:
    reply = engine.generate(messages, False, PARAMS)
    assert reply.stats is not None
    return reply.stats


def test_image_and_audio_reach_the_model_and_the_cache_is_reused(host, media_files):
    n_text = host.count_tokens([{"role": "user", "content": "Describe this."}])
    with_media = [{"role": "user", "content": [
        {"type": "image", "path": str(media_files["image"])},
        {"type": "audio", "path": str(media_files["audio"])},
        {"type": "text", "text": "Describe this."},
    ]}]
    stats = _run(host, with_media)
    # 1.5 s of 16 kHz audio is 38 tokens; a 160x120 image at least 70; plus their begin/end markers.
    assert stats.prompt_tokens >= n_text + 70 + 38
    assert stats.completion_tokens > 0
    # A follow-up about the same picture: the picture and the clip are not encoded again (only
    # the short text after them, which a fresh context would decode in one batch with the rest).
    follow = [*with_media, {"role": "assistant", "content": "Noted."},
              {"role": "user", "content": "And now, what do you see and hear in all of this?"}]
    stats2 = _run(host, follow)
    assert stats2.cached_tokens >= stats.prompt_tokens - MIN_CHUNK, (stats, stats2)


def test_broken_image_is_refused_by_name(host, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not really a picture")
    with pytest.raises(EngineError) as err:
        _run(host, [{"role": "user", "content": [{"type": "image", "path": str(bad)}, {"type": "text", "text": "hi"}]}])
    assert err.value.kind == "input" and "holiday.jpg" in err.value.message
    assert _run(host, [{"role": "user", "content": "still there?"}]).completion_tokens > 0


def test_model_without_projector_explains(gemma4, media_files):
    with BlockingEngine() as engine:
        engine.start()
        engine.load(LoadModel(str(gemma4["model"]), n_ctx=2048, n_threads=2))
        with pytest.raises(EngineError) as err:
            _run(engine, [{"role": "user", "content": [{"type": "image", "path": str(media_files["image"])}, {"type": "text", "text": "x"}]}])
    assert "projector" in err.value.message


def test_cli_image_and_audio(gemma4, media_files):
    r = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "chat", "--model", str(gemma4["model"]),
         "--mmproj", str(gemma4["mmproj"]), "--image", str(media_files["image"]),
         "--audio", str(media_files["audio"]), "--prompt", "What is this?", "--json",
         "--temperature", "0", "--max-tokens", "4", "--ctx", "2048", "--think"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["event"] == "done"
    assert events[-1]["stats"]["prompt_tokens"] > 100
