"""Turns host requests into engine calls: render the prompt from the model's own template, load media."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core.engine.llama_engine import LlamaEngine
from app.core.engine.messages import Generate, LoadModel, TokenInfo
from app.core.engine.model_file import check_gguf_file
from app.core.engine.prompt_text import (
    choose_marks,
    map_contents,
    match_template,
    split_marked,
    wrap_contents,
    wrap_tool_texts,
)
from app.core.engine.records import EngineError, GenerationStats, ModelInfo


class EngineSession:
    """The host's request handler around one LlamaEngine."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.tools: list[dict[str, Any]] = []  # declarations offered in the request being served

    def load(self, request: LoadModel, on_progress: Callable[[float], None]) -> ModelInfo:
        check_gguf_file(request.path)  # a plain message for a file that is not a model at all
        n_gpu_layers, n_cpu_moe = request.n_gpu_layers, request.n_cpu_moe
        if n_gpu_layers is None:  # "auto": as many layers as fit in the memory free right now
            from app.core.engine.autofit import auto_gpu_layers

            n_gpu_layers, auto_moe = auto_gpu_layers(request.path, request.n_ctx, request.mmproj,
                                                     request.kv_type)
            n_cpu_moe = n_cpu_moe or auto_moe
        info = self.engine.load(
            request.path,
            n_ctx=request.n_ctx,
            n_gpu_layers=int(n_gpu_layers),
            n_threads=request.n_threads,
            mmproj=request.mmproj,
            flash_attn=request.flash_attn,
            swa_full=request.swa_full,
            on_progress=on_progress,
            kv_type=request.kv_type,
            n_cpu_moe=n_cpu_moe,
            n_parallel=max(1, request.n_parallel),
        )
        if request.chat_template:  # a template supplied for a base model that has none
            self.engine.chat_template = request.chat_template
            info.has_template = True
        return info

    def _require_model(self) -> ModelInfo:
        if self.engine.info is None:
            raise EngineError("input", "No model is loaded. Open a model first.")
        return self.engine.info

    def render(self, messages: list[dict[str, Any]], enable_thinking: bool, *, generation: bool = True,
               tools: list[Any] | None = None) -> str:
        """The prompt text exactly as the model's chat template writes it (`tools`: in place of
        the request's declarations)."""
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
                tools=(self.tools if tools is None else tools) or None,
            )
        except Exception as exc:  # noqa: BLE001 - any template error is the model's fault: say so
            raise EngineError("input", f"The model's chat template failed: {exc}") from exc

    def _tokens(self, messages: list[dict[str, Any]], enable_thinking: bool, generation: bool) -> list[int]:
        """Template text tokenized with control tokens parsed; content text as plain text."""
        if not self.engine.chat_template:  # a base model's plain prompt is all text
            return self.engine.tokenize(self.render(messages, enable_thinking), add_special=True,
                                        parse_special=False)
        marks = choose_marks(messages, self.tools)
        plain = self.render(messages, enable_thinking, generation=generation)
        marked = self.render(wrap_contents(messages, marks), enable_thinking, generation=generation,
                             tools=wrap_tool_texts(self.tools, marks))
        tokens: list[int] = []
        for text, is_content in match_template(split_marked(marked, marks), plain):
            tokens += self.engine.tokenize(text, add_special=False, parse_special=not is_content)
        return tokens

    def prompt_tokens(self, messages: list[dict[str, Any]], enable_thinking: bool) -> tuple[list[int], int | None]:
        """Tokens of the full prompt, and where the last user turn ends (a cache checkpoint)."""
        tokens = self._tokens(messages, enable_thinking, generation=True)
        if not self.engine.chat_template:
            return tokens, None
        # Everything up to the end of the last user turn is shared with the next turn's prompt.
        head = self._tokens(messages, enable_thinking, generation=False)
        checkpoint = len(head) if tokens[: len(head)] == head else None
        return tokens, checkpoint

    def generate(self, request: Generate, on_piece: Callable[[str], None]) -> GenerationStats:
        self._require_model()
        messages = request.messages
        self.tools = request.tools
        if not request.cache:
            self.engine.forget_cache()
        if _has_media(messages):
            from app.core.engine.media_prompt import generate_with_media

            return generate_with_media(self, messages, request.enable_thinking, request.params, on_piece)
        tokens, checkpoint = self.request_tokens(request)
        return self.engine.generate_tokens(tokens, request.params, on_piece, checkpoint_at=checkpoint)

    def request_tokens(self, request: Generate) -> tuple[list[int], int | None]:
        """A text request's prompt tokens and cache checkpoint (see prompt_tokens)."""
        self._require_model()
        self.tools = request.tools
        if request.prompt is not None:  # raw completion: the caller writes control tokens itself
            return self.engine.tokenize(request.prompt, add_special=True), None
        return self.prompt_tokens(request.messages, request.enable_thinking)

    @staticmethod
    def has_media(request: Generate) -> bool:
        return _has_media(request.messages)

    def count_tokens(self, messages: list[dict[str, Any]], enable_thinking: bool,
                     tools: list[dict[str, Any]] | None = None) -> int:
        self._require_model()
        self.tools = tools or []
        tokens, _ = self.prompt_tokens(messages, enable_thinking)
        return len(tokens)

    def token_list(self, messages: list[dict[str, Any]], enable_thinking: bool,
                   tools: list[dict[str, Any]] | None = None) -> list[TokenInfo]:
        """The exact tokens a generation would feed (text-only prompts)."""
        self._require_model()
        self.tools = tools or []
        if _has_media(messages):
            raise EngineError("input", "Tokenizing prompts with images or audio is not supported.")
        tokens, _ = self.prompt_tokens(messages, enable_thinking)
        return [TokenInfo(t, self.engine.token_text(t), self.engine.is_control(t)) for t in tokens]

    def escape_content(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Messages whose content can no longer spell a control token (for libmtmd prompts).

        libmtmd tokenizes a media prompt in one piece, so content cannot be kept apart there;
        instead a word joiner goes after the first character of any control token's text.
        """
        return map_contents(messages, self.engine.escape_control_text)


def _has_media(messages: list[dict[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(p.get("type") in ("image", "audio") for p in content):
            return True
    return False
