"""Turns host requests into engine calls: render the prompt from the model's own template, load media."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.engine.llama_engine import LlamaEngine
from app.core.engine.records import EngineError, GenerationStats, ModelInfo, SamplingParams


class EngineSession:
    """The host's request handler around one LlamaEngine."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine

    def load(self, msg: dict[str, Any], on_progress: Callable[[float], None]) -> ModelInfo:
        n_ctx = int(msg.get("n_ctx") or 8192)
        n_gpu_layers = msg.get("n_gpu_layers")
        if n_gpu_layers is None:  # "auto": as many layers as fit in the memory free right now
            from app.core.engine.autofit import auto_gpu_layers

            n_gpu_layers = auto_gpu_layers(msg["path"], n_ctx, msg.get("mmproj"))
        info = self.engine.load(
            msg["path"],
            n_ctx=n_ctx,
            n_gpu_layers=int(n_gpu_layers),
            n_threads=msg.get("n_threads"),
            mmproj=msg.get("mmproj"),
            flash_attn=bool(msg.get("flash_attn", True)),
            swa_full=bool(msg.get("swa_full", False)),
            on_progress=on_progress,
        )
        if msg.get("chat_template"):  # a template supplied for a base model that has none
            self.engine.chat_template = msg["chat_template"]
            info.has_template = True
        return info

    def _require_model(self) -> ModelInfo:
        if self.engine.info is None:
            raise EngineError("input", "No model is loaded. Open a model first.")
        return self.engine.info

    def render(self, messages: list[dict[str, Any]], enable_thinking: bool, *, generation: bool = True) -> str:
        """The prompt text exactly as the model's chat template writes it."""
        from app.core.chat.prompt import plain_prompt, render_prompt

        template = self.engine.chat_template
        if not template:
            return plain_prompt(messages)
        try:
            return render_prompt(
                template,
                messages,
                enable_thinking=enable_thinking,
                bos_token=self.engine.bos_text,
                eos_token=self.engine.eos_text,
                add_generation_prompt=generation,
            )
        except Exception as exc:  # noqa: BLE001 - a template error is the model's fault, say so
            raise EngineError("input", f"The model's chat template failed: {exc}") from exc

    def prompt_tokens(self, messages: list[dict[str, Any]], enable_thinking: bool) -> tuple[list[int], int | None]:
        """Tokens of the full prompt, and where the last user turn ends (a cache checkpoint)."""
        has_template = bool(self.engine.chat_template)
        tokens = self.engine.tokenize(self.render(messages, enable_thinking), add_special=not has_template)
        if not has_template:
            return tokens, None
        # Everything up to the end of the last user turn is shared with the next turn's prompt.
        head = self.engine.tokenize(self.render(messages, enable_thinking, generation=False), add_special=False)
        checkpoint = len(head) if tokens[: len(head)] == head else None
        return tokens, checkpoint

    def generate(self, msg: dict[str, Any], on_piece: Callable[[str], None]) -> GenerationStats:
        self._require_model()
        messages = msg.get("messages") or []
        enable_thinking = bool(msg.get("enable_thinking", False))
        params = SamplingParams.from_dict(msg.get("params") or {})
        if _has_media(messages):
            return self._generate_with_media(messages, enable_thinking, params, on_piece)
        if "prompt" in msg:  # raw completion (benchmarks, base models driven by hand)
            tokens, checkpoint = self.engine.tokenize(msg["prompt"], add_special=True), None
        else:
            tokens, checkpoint = self.prompt_tokens(messages, enable_thinking)
        return self.engine.generate_tokens(tokens, params, on_piece, checkpoint_at=checkpoint)

    def count_tokens(self, msg: dict[str, Any]) -> int:
        self._require_model()
        tokens, _ = self.prompt_tokens(msg.get("messages") or [], bool(msg.get("enable_thinking")))
        return len(tokens)

    def _generate_with_media(
        self,
        messages: list[dict[str, Any]],
        enable_thinking: bool,
        params: SamplingParams,
        on_piece: Callable[[str], None],
    ) -> GenerationStats:
        from app.core.engine.media_prompt import generate_with_media

        return generate_with_media(self, messages, enable_thinking, params, on_piece)


def _has_media(messages: list[dict[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(p.get("type") in ("image", "audio") for p in content):
            return True
    return False
