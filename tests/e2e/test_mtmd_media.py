"""Images and audio really travel through libmtmd (synthetic gemma4v/gemma4a projector) into
the synthetic Gemma 4, via app.core.engine.mtmd.MediaContext."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from PIL import Image, ImageDraw

from app.core.engine.mtmd import AudioInput, ChunkInfo, ImageInput, MediaContext
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

N_CTX = 2048


@pytest.fixture(scope="module")
def engine() -> Iterator[tuple[Any, MediaContext]]:
    import llama_cpp

    files = synthetic_gemma4()
    llm = llama_cpp.Llama(str(files["model"]), n_ctx=N_CTX, n_batch=512, n_threads=2,
                          seed=5, verbose=False)
    t0 = time.perf_counter()
    media = MediaContext(str(files["mmproj"]), llm, n_threads=2, use_gpu=False)
    print(f"projector load: {(time.perf_counter() - t0) * 1000:.0f} ms")
    yield llm, media
    media.close()
    llm.close()


def prompt_for(parts: list[dict[str, str]]) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(CHAT_TEMPLATE).render(
        messages=[{"role": "user", "content": parts}], add_generation_prompt=True,
        enable_thinking=False, bos_token="<bos>", eos_token="<eos>",
    )


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


def reset(llm: Any) -> None:
    import llama_cpp

    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm._ctx.ctx), True)


def last_logits(llm: Any) -> np.ndarray:
    import llama_cpp

    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()


def generate(llm: Any, n: int) -> list[int]:
    """Greedy decode after eval_prompt (its last logits are kept), positions picked by llama.cpp."""
    import llama_cpp

    lctx = llm._ctx.ctx
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(sampler, llama_cpp.llama_sampler_init_greedy())
    out: list[int] = []
    try:
        for _ in range(n):
            tok = llama_cpp.llama_sampler_sample(sampler, lctx, -1)
            out.append(tok)
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            arr = (llama_cpp.llama_token * 1)(tok)
            assert llama_cpp.llama_decode(lctx, llama_cpp.llama_batch_get_one(arr, 1)) == 0
    finally:
        llama_cpp.llama_sampler_free(sampler)
    return out


def kinds(chunks: list[ChunkInfo]) -> list[str]:
    return [c.kind for c in chunks]


def test_projector_reports_both_towers(engine: tuple[Any, MediaContext]) -> None:
    _llm, media = engine
    assert media.supports_vision and media.supports_audio
    assert media.audio_sample_rate == 16000
    assert media.media_marker() == "<__media__>"


def test_image_goes_through_the_model(engine: tuple[Any, MediaContext]) -> None:
    llm, media = engine
    prompt = prompt_for([{"type": "image"}, {"type": "text", "text": "What is in the picture?"}])
    text_only = llm.tokenize(prompt.replace("<|image|>", "").encode(), add_bos=False, special=True)
    chunks = media.tokenize(prompt, [picture(96, 80, 0)])
    assert kinds(chunks) == ["text", "image", "text"]
    n_image = chunks[1].n_tokens
    # Gemma 4's budget is 70..1120 tokens per image; libmtmd wraps it in <|image> ... <image|>.
    assert 70 <= n_image <= 1120
    begin, end = (llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in ("<|image>", "<image|>"))
    assert chunks[0].tokens[-1] == begin and chunks[2].tokens[0] == end
    assert sum(c.n_tokens for c in chunks) == len(text_only) + 2 + n_image

    reset(llm)
    t0 = time.perf_counter()
    n_past, n_tokens = media.eval_prompt(llm, prompt, [picture(96, 80, 0)], 0, 512)
    dt = time.perf_counter() - t0
    print(f"image: {n_image} tokens, prompt {n_tokens} tokens evaluated in {dt * 1000:.0f} ms")
    assert n_tokens == sum(c.n_tokens for c in chunks)
    assert n_past == n_tokens
    logits_a = last_logits(llm)
    reply = generate(llm, 12)
    assert len(reply) >= 1

    # A different picture must change what the model sees.
    reset(llm)
    media.eval_prompt(llm, prompt, [picture(96, 80, 30)], 0, 512)
    assert not np.allclose(logits_a, last_logits(llm))


def test_audio_goes_through_the_model(engine: tuple[Any, MediaContext]) -> None:
    llm, media = engine
    rate = media.audio_sample_rate
    prompt = prompt_for([{"type": "audio"}, {"type": "text", "text": "Transcribe."}])
    chunks = media.tokenize(prompt, [tone(1.5, 440.0, rate)])
    assert kinds(chunks) == ["text", "audio", "text"]
    # 1.5 s -> 149 mel frames (10 ms hop, 20 ms window) -> two stride-2 convs -> 38 tokens.
    assert chunks[1].n_tokens == 38
    begin = llm.tokenize(b"<|audio>", add_bos=False, special=True)[0]
    assert chunks[0].tokens[-1] == begin

    # Continue an existing context: the audio message goes after an earlier turn.
    reset(llm)
    first = prompt_for([{"type": "text", "text": "Hello."}])
    n0, _ = media.eval_prompt(llm, first, [], 0, 512)
    t0 = time.perf_counter()
    n_past, n_tokens = media.eval_prompt(llm, prompt.replace("<bos>", ""), [tone(1.5, 440.0, rate)], n0, 512)
    dt = time.perf_counter() - t0
    print(f"audio 1.5 s: {chunks[1].n_tokens} tokens, prompt {n_tokens} tokens evaluated in {dt * 1000:.0f} ms")
    assert n_past == n0 + n_tokens
    logits_a = last_logits(llm)
    assert len(generate(llm, 12)) >= 1

    reset(llm)
    media.eval_prompt(llm, first, [], 0, 512)
    media.eval_prompt(llm, prompt.replace("<bos>", ""), [tone(1.5, 1200.0, rate)], n0, 512)
    assert not np.allclose(logits_a, last_logits(llm))


def test_image_and_audio_in_one_message(engine: tuple[Any, MediaContext]) -> None:
    llm, media = engine
    prompt = prompt_for([{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "Both?"}])
    items = [picture(64, 64, 5), tone(1.0, 300.0, media.audio_sample_rate)]
    assert kinds(media.tokenize(prompt, items)) == ["text", "image", "text", "audio", "text"]
    reset(llm)
    n_past, n_tokens = media.eval_prompt(llm, prompt, items, 0, 512)
    assert n_past == n_tokens
    assert len(generate(llm, 4)) >= 1


def test_bad_input_gets_plain_errors(engine: tuple[Any, MediaContext]) -> None:
    llm, media = engine
    prompt = prompt_for([{"type": "image"}, {"type": "text", "text": "?"}])
    with pytest.raises(ValueError, match="do not match"):
        media.tokenize(prompt, [tone(1.0, 300.0, 16000)])
    with pytest.raises(ValueError, match="1 place"):
        media.tokenize(prompt, [])
    with pytest.raises(ValueError, match="damaged"):
        media.tokenize(prompt, [ImageInput(b"\x00" * 10, 4, 4)])
    with pytest.raises(ValueError, match="resample"):
        media.tokenize(prompt_for([{"type": "audio"}]), [tone(1.0, 300.0, 44100)])
    big = prompt_for([{"type": "text", "text": "word " * 2500}])
    with pytest.raises(ValueError, match="context"):
        media.eval_prompt(llm, big, [], 0, 512)


def test_damaged_projector_is_refused(tmp_path: Path, engine: tuple[Any, MediaContext]) -> None:
    llm, _media = engine
    broken = tmp_path / "mmproj-broken.gguf"
    src = synthetic_gemma4()["mmproj"]
    shutil.copyfile(src, broken)
    with broken.open("r+b") as fh:
        fh.truncate(src.stat().st_size // 2)
    with pytest.raises(ValueError, match="could not be loaded"):
        MediaContext(str(broken), llm, n_threads=2, use_gpu=False)
