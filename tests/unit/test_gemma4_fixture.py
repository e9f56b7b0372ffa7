"""The synthetic Gemma 4: real llama.cpp loads it, generates with it, and its template renders."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.fixtures.gemma4 import MODEL_NAME, synthetic_gemma4, write_mmproj
from tests.fixtures.gemma4_template import CHAT_TEMPLATE


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    import llama_cpp

    from app.core.engine.backends import load_backends

    load_backends()  # a GGML_BACKEND_DL build has no backend, not even the CPU, until loaded
    path = synthetic_gemma4()["model"]
    t0 = time.perf_counter()
    model = llama_cpp.Llama(str(path), n_ctx=1024, n_batch=256, n_threads=2, seed=7, verbose=False)
    print(f"synthetic gemma4 load: {(time.perf_counter() - t0) * 1000:.0f} ms")
    yield model
    model.close()


def render(messages: list[dict[str, Any]], *, enable_thinking: bool) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, add_generation_prompt=True, enable_thinking=enable_thinking,
        bos_token="<bos>", eos_token="<eos>",
    )


def test_files_are_built_once_and_reused() -> None:
    first = synthetic_gemma4()
    mtime = first["model"].stat().st_mtime_ns
    again = synthetic_gemma4()
    assert again == first
    assert again["model"].stat().st_mtime_ns == mtime
    assert first["model"].stat().st_size < 80_000_000
    assert first["mmproj"].stat().st_size < 2_000_000


def test_build_is_deterministic(tmp_path: Path) -> None:
    # The projector is enough to show the seeding (the model would cost 70 MB more to write).
    write_mmproj(tmp_path / "mmproj.gguf")
    assert (tmp_path / "mmproj.gguf").read_bytes() == synthetic_gemma4()["mmproj"].read_bytes()


def test_header_says_gemma4_with_template(llm: Any) -> None:
    meta = llm.metadata
    assert meta["general.architecture"] == "gemma4"
    assert meta["general.name"] == MODEL_NAME
    assert meta["tokenizer.chat_template"] == CHAT_TEMPLATE
    assert meta["gemma4.attention.shared_kv_layers"] == "2"


@pytest.mark.parametrize("marker", ["<|turn>", "<turn|>", "<|think|>", "<|channel>", "<channel|>",
                                    "<|image|>", "<|audio|>", "<|video|>", "<|tool>", "<tool|>",
                                    "<|tool_call>", "<tool_call|>", "<|tool_response>",
                                    "<tool_response|>", '<|"|>', "<|image>", "<image|>",
                                    "<|audio>", "<audio|>"])
def test_markers_are_single_special_tokens(llm: Any, marker: str) -> None:
    ids = llm.tokenize(marker.encode(), add_bos=False, special=True)
    assert len(ids) == 1, ids
    assert llm.detokenize(ids, special=True).decode() == marker


def test_marker_visibility_matches_real_gemma4(llm: Any) -> None:
    # Like the official GGUFs: the channel/tool markers always render (USER_DEFINED) so the
    # thinking splitter sees them; turn markers are CONTROL and render only when asked.
    channel = llm.tokenize(b"<|channel>", add_bos=False, special=True)
    turn_end = llm.tokenize(b"<turn|>", add_bos=False, special=True)
    assert llm.detokenize(channel, special=False) == b"<|channel>"
    assert llm.detokenize(turn_end, special=False) == b""
    assert llm.token_eos() == 1
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    assert llama_cpp.llama_vocab_is_eog(vocab, turn_end[0])  # <turn|> ends a reply


def test_template_thinking_off_prefills_empty_thought() -> None:
    text = render([{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Hi"}], enable_thinking=False)
    assert text == ("<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n"
                    "<|turn>model\n<|channel>thought\n<channel|>")


def test_template_thinking_on_and_history_without_thoughts() -> None:
    text = render([
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<|channel>thought\nadd them<channel|>4"},
        {"role": "user", "content": [{"type": "image"}, {"type": "audio"},
                                     {"type": "text", "text": "And this?"}]},
    ], enable_thinking=True)
    assert text == ("<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\n2+2?<turn|>\n"
                    "<|turn>model\n4<turn|>\n"
                    "<|turn>user\n<|image|><|audio|>And this?<turn|>\n<|turn>model\n")


def test_generates_tokens(llm: Any) -> None:
    prompt = render([{"role": "user", "content": "Say something."}], enable_thinking=False)
    t0 = time.perf_counter()
    out = llm.create_completion(prompt.replace("<bos>", ""), max_tokens=8, temperature=0.8,
                                seed=3, stop=[])
    dt = time.perf_counter() - t0
    usage = out["usage"]
    print(f"synthetic gemma4: prompt {usage['prompt_tokens']} tok, "
          f"generated {usage['completion_tokens']} tok in {dt * 1000:.0f} ms")
    assert usage["prompt_tokens"] == len(llm.tokenize(prompt.replace("<bos>", "").encode(),
                                                      special=True))
    assert usage["completion_tokens"] >= 1
    assert out["choices"][0]["finish_reason"] in ("length", "stop")


def test_grammar_forces_thinking_then_answer(llm: Any) -> None:
    # Random weights give random text; a grammar pins the Gemma 4 reply shape while the model
    # still really runs. Other tests use the same technique for a known thinking/answer split.
    import llama_cpp

    grammar = llama_cpp.LlamaGrammar.from_string(
        'root ::= "<|channel>thought\\n" word " " word "<channel|>" word\n'
        "word ::= [a-z] [a-z] [a-z] [a-z]?\n",
        verbose=False,
    )
    prompt = render([{"role": "user", "content": "Think first."}], enable_thinking=True)
    out = llm.create_completion(prompt.replace("<bos>", ""), max_tokens=48, temperature=0.7,
                                seed=11, grammar=grammar)
    text = out["choices"][0]["text"]
    assert re.fullmatch(r"<\|channel>thought\n[a-z]{3,4} [a-z]{3,4}<channel\|>[a-z]{3,4}", text), text
    assert out["choices"][0]["finish_reason"] == "stop"
