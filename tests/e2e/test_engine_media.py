"""Images and audio through the real engine host into the synthetic Gemma 4 (libmtmd), and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from app.core.engine.host_process import HostProcess
from tests.fixtures.gemma4 import synthetic_gemma4

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"temperature": 0.0, "max_tokens": 6}


@pytest.fixture(scope="module")
def gemma4() -> dict[str, Path]:
    return synthetic_gemma4()


@pytest.fixture()
def media_files(tmp_path: Path) -> dict[str, Path]:
    img = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(img)
    wav = tmp_path / "voice.wav"
    t = np.arange(int(44100 * 1.5)) / 44100
    sf.write(wav, np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2, axis=1), 44100)  # stereo 44.1 kHz
    return {"image": img, "audio": wav}


@pytest.fixture()
def host(gemma4):
    h = HostProcess()
    h.start()
    h.wait_for("ready", 60)
    h.send({"op": "load", "path": str(gemma4["model"]), "mmproj": str(gemma4["mmproj"]), "n_ctx": 4096, "n_threads": 2})
    loaded = h.wait_for("loaded", 120)
    assert loaded["ev"] == "loaded", loaded
    assert loaded["info"]["supports_vision"] and loaded["info"]["supports_audio"]
    yield h
    h.stop()


def _run(h: HostProcess, req_id: int, messages: list[dict], **extra) -> dict:
    h.send({"op": "generate", "id": req_id, "messages": messages, "enable_thinking": False, "params": PARAMS, **extra})
    while True:
        events = h.read_events(1.0)
        assert events is not None, h.stderr_tail()
        for e in events:
            if e["ev"] in ("done", "error"):
                return e


def _count(h: HostProcess, messages: list[dict]) -> int:
    h.send({"op": "count_tokens", "id": 99, "messages": messages})
    return h.wait_for("tokens", 30)["count"]


def test_image_and_audio_reach_the_model_and_the_cache_is_reused(host, media_files):
    text_only = [{"role": "user", "content": "Describe this."}]
    n_text = _count(host, text_only)
    with_media = [{"role": "user", "content": [
        {"type": "image", "path": str(media_files["image"])},
        {"type": "audio", "path": str(media_files["audio"])},
        {"type": "text", "text": "Describe this."},
    ]}]
    done = _run(host, 1, with_media)
    assert done["ev"] == "done", done
    stats = done["stats"]
    # 1.5 s of 16 kHz audio is 38 tokens; a 160x120 image at least 70; plus their begin/end markers.
    assert stats["prompt_tokens"] >= n_text + 70 + 38
    assert stats["completion_tokens"] > 0
    # A follow-up about the same picture: nothing before the new turn is encoded again.
    follow = [*with_media, {"role": "assistant", "content": "Noted."}, {"role": "user", "content": "And now?"}]
    done2 = _run(host, 2, follow)
    assert done2["ev"] == "done", done2
    assert done2["stats"]["cached_tokens"] >= stats["prompt_tokens"] - 8, (stats, done2["stats"])


def test_broken_image_is_refused_by_name(host, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not really a picture")
    ev = _run(host, 3, [{"role": "user", "content": [{"type": "image", "path": str(bad)}, {"type": "text", "text": "hi"}]}])
    assert ev["ev"] == "error" and ev["kind"] == "input"
    assert "holiday.jpg" in ev["message"]
    assert _run(host, 4, [{"role": "user", "content": "still there?"}])["ev"] == "done"


def test_model_without_projector_explains(gemma4, media_files):
    h = HostProcess()
    h.start()
    h.wait_for("ready", 60)
    h.send({"op": "load", "path": str(gemma4["model"]), "n_ctx": 2048, "n_threads": 2})
    assert h.wait_for("loaded", 120)["ev"] == "loaded"
    ev = _run(h, 1, [{"role": "user", "content": [{"type": "image", "path": str(media_files["image"])}, {"type": "text", "text": "x"}]}])
    h.stop()
    assert ev["ev"] == "error" and "projector" in ev["message"]


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
