"""Images and audio really travel through libmtmd (synthetic gemma4v/gemma4a projector) into
the synthetic Gemma 4, the way the engine host feeds them: LlamaEngine with its MediaContext,
`prepared()` chunks evaluated by `engine.eval_media_chunk` / `engine.decode`."""

from __future__ import annotations

import ctypes
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import llama_cpp as lc
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from app.core.engine.llama_engine import LlamaEngine
from app.core.engine.media_inputs import AudioInput, ChunkInfo, ImageInput, MediaInput
from app.core.engine.mtmd import MediaContext, PreparedPrompt
from app.core.engine.records import EngineError, GenerationStats, SamplingParams
from app.core.engine.session import EngineSession
from tests.fixtures.gemma4 import synthetic_gemma4

N_CTX = 2048
GREEDY = SamplingParams(temperature=0.0, max_tokens=8)


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    files = synthetic_gemma4()
    eng = LlamaEngine()
    t0 = time.perf_counter()
    eng.load(str(files["model"]), n_ctx=N_CTX, n_gpu_layers=0, n_threads=1, mmproj=str(files["mmproj"]))
    print(f"model + projector load: {(time.perf_counter() - t0) * 1000:.0f} ms")
    yield eng
    eng.close()


def media_of(engine: LlamaEngine) -> MediaContext:
    media = engine.media
    assert isinstance(media, MediaContext)
    return media


def prompt_for(engine: LlamaEngine, parts: list[dict[str, str]]) -> str:
    """The prompt as the engine renders it, from the model's own chat template."""
    return EngineSession(engine).render([{"role": "user", "content": parts}], False)


def picture(width: int, height: int, shift: int) -> ImageInput:
    img = Image.new("RGB", (width, height), (20, 40 + shift, 200))
    draw = ImageDraw.Draw(img)
    draw.ellipse((10 + shift, 10, width // 2 + shift, height // 2), fill=(250, 200, 0))
    draw.rectangle((width // 2, height // 2, width - 5, height - 5), fill=(0, 160, 60))
    return ImageInput(img.tobytes(), width, height)


def tone(seconds: float, freq: float, rate: int) -> AudioInput:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    pcm = 0.4 * np.sin(2 * np.pi * freq * t) * np.minimum(1.0, 8 * t)
    return AudioInput(pcm.astype(np.float32), sample_rate=rate)


def kinds(chunks: list[ChunkInfo]) -> list[str]:
    return [c.kind for c in chunks]


@dataclass
class Run:
    """One generation: what the model saw last before answering, and what it answered."""

    stats: GenerationStats
    logits: npt.NDArray[np.float32]
    reply: str
    n_prompt: int


def last_logits(engine: LlamaEngine) -> npt.NDArray[np.float32]:
    n_vocab = lc.llama_vocab_n_tokens(engine.vocab)
    ptr = lc.llama_get_logits_ith(engine.ctx, -1)
    return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)).copy()


def feed(engine: LlamaEngine, prepared: PreparedPrompt) -> None:
    """Every chunk at the end of the cache, as media_prompt's prefill does (one pseudo-token run per item)."""
    last = len(prepared.infos) - 1
    for i, info in enumerate(prepared.infos):
        if info.kind == "text":
            engine.decode(list(info.tokens), logits_last=i == last)
        else:
            engine.eval_media_chunk(prepared, i, [-1 - i] * info.n_tokens, logits_last=i == last)


def run(engine: LlamaEngine, prompt: str, media: list[MediaInput], *, before: str = "") -> Run:
    """Greedy generation through the engine for `before` (plain text) then `prompt` with media."""
    head = engine.tokenize(before, add_special=False) if before else []
    seen: list[npt.NDArray[np.float32]] = []
    pieces: list[str] = []
    with media_of(engine).prepared(prompt, media) as prepared:
        n_prompt = len(head) + sum(c.n_tokens for c in prepared.infos)

        def prefill(_stats: GenerationStats) -> None:
            engine.forget_cache()
            if head:
                engine.decode(head, logits_last=False)
            feed(engine, prepared)
            seen.append(last_logits(engine))

        stats = engine.generate(n_prompt, GREEDY, pieces.append, prefill)
    return Run(stats, seen[0], "".join(pieces), n_prompt)


def test_projector_reports_both_towers(engine: LlamaEngine) -> None:
    media = media_of(engine)
    assert media.supports_vision and media.supports_audio
    assert media.audio_sample_rate == 16000
    assert media.media_marker() == "<__media__>"
    assert engine.info is not None and engine.info.supports_vision and engine.info.supports_audio


def test_image_goes_through_the_model(engine: LlamaEngine) -> None:
    media = media_of(engine)
    prompt = prompt_for(engine, [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}])
    assert "<|image|>" in prompt
    text_only = engine.tokenize(prompt.replace("<|image|>", ""), add_special=False)
    chunks = media.tokenize(prompt, [picture(96, 80, 0)])
    assert kinds(chunks) == ["text", "image", "text"]
    n_image = chunks[1].n_tokens
    # Gemma 4's budget is 70..1120 tokens per image; libmtmd wraps it in <|image> ... <image|>.
    assert 70 <= n_image <= 1120
    begin, end = (engine.tokenize(t, add_special=False)[0] for t in ("<|image>", "<image|>"))
    assert chunks[0].tokens[-1] == begin and chunks[2].tokens[0] == end
    assert sum(c.n_tokens for c in chunks) == len(text_only) + 2 + n_image

    t0 = time.perf_counter()
    first = run(engine, prompt, [picture(96, 80, 0)])
    dt = time.perf_counter() - t0
    print(f"image: {n_image} tokens, prompt {first.n_prompt} tokens + {first.stats.completion_tokens}"
          f" generated in {dt * 1000:.0f} ms")
    assert first.n_prompt == sum(c.n_tokens for c in chunks)
    assert first.stats.cached_tokens == 0
    assert first.stats.n_past == first.n_prompt + first.stats.completion_tokens
    assert first.stats.completion_tokens >= 1

    # The same picture again gives the same answer; a different one changes what the model sees.
    again = run(engine, prompt, [picture(96, 80, 0)])
    assert again.reply == first.reply and np.array_equal(again.logits, first.logits)
    other = run(engine, prompt, [picture(96, 80, 30)])
    assert not np.allclose(first.logits, other.logits)


def test_audio_goes_through_the_model(engine: LlamaEngine) -> None:
    media = media_of(engine)
    rate = media.audio_sample_rate
    prompt = prompt_for(engine, [{"type": "audio"}, {"type": "text", "text": "Transcribe."}])
    chunks = media.tokenize(prompt, [tone(1.5, 440.0, rate)])
    assert kinds(chunks) == ["text", "audio", "text"]
    # 1.5 s -> 149 mel frames (10 ms hop, 20 ms window) -> two stride-2 convs -> 38 tokens.
    assert chunks[1].n_tokens == 38
    assert chunks[0].tokens[-1] == engine.tokenize("<|audio>", add_special=False)[0]

    # Continue an existing context: the audio message goes after an earlier turn.
    earlier = prompt_for(engine, [{"type": "text", "text": "Hello."}])
    follow = prompt.removeprefix(engine.bos_text)
    n_earlier = len(engine.tokenize(earlier, add_special=False))
    t0 = time.perf_counter()
    first = run(engine, follow, [tone(1.5, 440.0, rate)], before=earlier)
    dt = time.perf_counter() - t0
    print(f"audio 1.5 s: {chunks[1].n_tokens} tokens, prompt {first.n_prompt} tokens evaluated and"
          f" {first.stats.completion_tokens} generated in {dt * 1000:.0f} ms")
    n_follow = sum(c.n_tokens for c in media.tokenize(follow, [tone(1.5, 440.0, rate)]))
    assert n_follow == sum(c.n_tokens for c in chunks) - 1  # all but the BOS
    assert first.n_prompt == n_earlier + n_follow
    assert first.stats.n_past == first.n_prompt + first.stats.completion_tokens
    assert first.stats.completion_tokens >= 1

    other = run(engine, follow, [tone(1.5, 1200.0, rate)], before=earlier)
    assert not np.allclose(first.logits, other.logits)


def test_image_and_audio_in_one_message(engine: LlamaEngine) -> None:
    media = media_of(engine)
    prompt = prompt_for(engine, [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "Both?"}])
    items: list[MediaInput] = [picture(64, 64, 5), tone(1.0, 300.0, media.audio_sample_rate)]
    chunks = media.tokenize(prompt, items)
    assert kinds(chunks) == ["text", "image", "text", "audio", "text"]
    both = run(engine, prompt, items)
    assert both.n_prompt == sum(c.n_tokens for c in chunks)
    assert both.stats.n_past == both.n_prompt + both.stats.completion_tokens
    assert both.stats.completion_tokens >= 1
    # The clip counts: the same picture with another clip is seen differently.
    other = run(engine, prompt, [items[0], tone(1.0, 900.0, media.audio_sample_rate)])
    assert not np.allclose(both.logits, other.logits)


def test_bad_input_gets_plain_errors(engine: LlamaEngine) -> None:
    media = media_of(engine)
    prompt = prompt_for(engine, [{"type": "image"}, {"type": "text", "text": "?"}])
    with pytest.raises(ValueError, match="do not match"):
        media.tokenize(prompt, [tone(1.0, 300.0, 16000)])
    with pytest.raises(ValueError, match="1 place"), media.prepared(prompt, []):
        pass
    with pytest.raises(ValueError, match="damaged"):
        media.tokenize(prompt, [ImageInput(b"\x00" * 10, 4, 4)])
    with pytest.raises(ValueError, match="resample"):
        media.tokenize(prompt_for(engine, [{"type": "audio"}]), [tone(1.0, 300.0, 44100)])
    with pytest.raises(ValueError, match="empty"):
        media.tokenize(prompt_for(engine, [{"type": "audio"}]), [AudioInput(np.zeros(0, np.float32))])
    # Too long for the context: refused before anything is decoded.
    big = prompt_for(engine, [{"type": "image"}, {"type": "text", "text": "word " * 2500}])
    with pytest.raises(EngineError, match="longer than the model's context") as err:
        run(engine, big, [picture(64, 64, 0)])
    assert err.value.kind == "context"


def test_damaged_projector_is_refused(tmp_path: Path, engine: LlamaEngine) -> None:
    broken = tmp_path / "mmproj-broken.gguf"
    src = synthetic_gemma4()["mmproj"]
    shutil.copyfile(src, broken)
    with broken.open("r+b") as fh:
        fh.truncate(src.stat().st_size // 2)
    with pytest.raises(ValueError, match="could not be loaded"):
        MediaContext(str(broken), engine.model, n_threads=1, use_gpu=False)
    other = LlamaEngine()
    with pytest.raises(EngineError, match="mmproj-broken.gguf does not fit this model") as err:
        other.load(str(synthetic_gemma4()["model"]), n_ctx=256, n_gpu_layers=0, n_threads=1,
                   mmproj=str(broken))
    assert err.value.kind == "load" and "could not be loaded" in err.value.message
    assert other.model is None and other.media is None
