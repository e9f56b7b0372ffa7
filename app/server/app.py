"""The OpenAI-compatible HTTP API over one engine: requests become engine requests, events SSE."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.engine.records import EngineError, GenerationStats
from app.server.convert import (
    BadRequest,
    StopMatcher,
    engine_messages,
    grammar_for,
    sampling,
    stop_list,
    thinking_enabled,
)
from app.server.engine_port import Delta, EnginePort, Error, Finished, GenRequest, PortEvent
from app.server.guard import Guard, error_body
from app.server.schemas import ChatRequest, CompletionRequest, TemplateRequest, TokenizeRequest
from app.server.tools import OutCall, declaration, plan_tools, read_calls

MAX_BODY_BYTES = 64 * 1024 * 1024  # room for a few base64 images or clips, not for abuse


@dataclass(frozen=True)
class ServedModel:
    id: str  # file name, as clients write it in `model`
    path: str
    key: str = ""  # "repo/filename" in the store


@dataclass
class ServerConfig:
    media_dir: Path
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    max_body_bytes: int = MAX_BODY_BYTES
    installed: Callable[[], list[ServedModel]] = list
    # Set when requests may switch models: loads an installed model (blocking; EngineError or
    # BadRequest when it cannot). None: naming a model that is not loaded is a 400.
    switch_model: Callable[[ServedModel], None] | None = None


_ERROR_STATUS = {"context": 400, "input": 400, "load": 500, "internal": 500}


def _error(status: int, message: str, param: str | None = None,
           code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(error_body(message, kind, code, param), status_code=status)


def _finish_reason(stats: GenerationStats, stopped_by_text: bool, called: bool = False) -> str:
    if called:
        return "tool_calls"
    if stopped_by_text:
        return "stop"
    return "length" if stats.finish_reason in ("length", "context") else "stop"


def _usage(stats: GenerationStats) -> dict[str, Any]:
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.prompt_tokens + stats.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": stats.cached_tokens}}


class Live:
    """Generations the engine is running now (ended by the engine's own Done, not the client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


class _Output:
    """A chat generation's deltas as OpenAI message deltas: reasoning, content, tool calls.

    A tool-call block that reads as calls to offered functions becomes `tool_calls` entries
    (numbered by `index` across the answer); any other block stays text (see app/server/tools).
    """

    def __init__(self, tool_names: frozenset[str]) -> None:
        self.tool_names = tool_names
        self.calls: list[OutCall] = []

    def deltas(self, delta: Delta) -> list[dict[str, Any]]:
        if delta.kind == "thinking":
            return [{"reasoning_content": delta.text}]
        if delta.kind == "tool_call":
            calls = read_calls(delta.text, self.tool_names)
            if calls is not None:
                out: list[dict[str, Any]] = []
                for call in calls:
                    out += call.stream_deltas(len(self.calls))
                    self.calls.append(call)
                return out
        return [{"content": delta.text}]


class _Run:
    """One generation seen from the event loop: engine events arrive on an asyncio queue."""

    def __init__(self, engine: EnginePort, request: GenRequest, stops: list[str],
                 live: Live, http: Request) -> None:
        self.engine, self.request, self.live, self.http = engine, request, live, http
        self.matcher = StopMatcher(stops)
        self.stats = GenerationStats()
        self.req_id: int | None = None
        self.ended = False

    async def events(self) -> AsyncIterator[PortEvent]:
        """Deltas (stop sequences already cut), then Finished or Error; stops the engine if left."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[PortEvent] = asyncio.Queue()

        def sink(event: PortEvent) -> None:
            if not isinstance(event, Delta):
                self.live.add(-1)
            loop.call_soon_threadsafe(queue.put_nowait, event)

        req_id = self.req_id = self.engine.generate(self.request, sink)
        self.live.add(1)

        async def watch() -> None:
            # uvicorn swallows writes to a closed socket, so the way to see a client leave is its
            # http.disconnect message: the engine is told at once, even while no text is due.
            while (await self.http.receive()).get("type") != "http.disconnect":
                pass
            self.engine.stop(req_id)

        watcher = asyncio.create_task(watch())
        try:
            while True:
                event = await queue.get()
                if isinstance(event, Delta):
                    text = event.text
                    if event.kind == "answer":
                        text = self.matcher.feed(text)
                        if self.matcher.hit:
                            self.engine.stop(self.req_id)
                    if text:
                        yield Delta(event.kind, text)
                    continue
                self.ended = True
                if isinstance(event, Finished):
                    tail = self.matcher.flush()
                    if tail:
                        yield Delta("answer", tail)
                    self.stats = event.stats
                yield event
                return
        finally:
            watcher.cancel()
            if not self.ended:  # the handler failed or was cancelled: stop at once
                self.engine.stop(req_id)


def create_app(engine: EnginePort, config: ServerConfig) -> FastAPI:
    """The FastAPI app; `engine` already has its model loaded."""
    api = FastAPI(title="Gemma Desktop", docs_url=None, redoc_url=None, openapi_url=None)
    config.media_dir.mkdir(parents=True, exist_ok=True)
    live = Live()

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}", where or None)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @api.exception_handler(EngineError)
    async def _engine(_request: Request, exc: EngineError) -> JSONResponse:
        return _error(_ERROR_STATUS.get(exc.kind, 500), exc.message, None, exc.kind)

    @api.exception_handler(BadRequest)
    async def _bad(_request: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc.status, exc.message, exc.param, exc.code)

    def loaded_id() -> str:
        info = engine.info
        return Path(info.path).name if info is not None else ""

    async def check_model(name: str) -> None:
        info = engine.info
        if not name or (info is None and config.switch_model is None):
            return
        if info is not None and name in (loaded_id(), Path(info.path).stem, info.path, info.name):
            return
        wanted = next((m for m in config.installed() if name in (m.id, m.key)), None)
        if wanted is not None and config.switch_model is not None:
            await asyncio.to_thread(config.switch_model, wanted)
            return
        if wanted is not None:
            raise BadRequest(f"The model {name!r} is installed but not loaded; this server "
                             f"serves {loaded_id()!r}.", "model", 400, "model_not_loaded")
        raise BadRequest(f"The model {name!r} does not exist here.", "model", 404,
                         "model_not_found")

    @api.get("/health")
    @api.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "generating": live.count}

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        loaded = engine.info
        data: list[dict[str, Any]] = []
        seen: set[str] = set()
        if loaded is not None:
            data.append(_model_row(loaded_id(), True))
            seen.add(str(Path(loaded.path).resolve()))
        for m in config.installed():
            if str(Path(m.path).resolve()) not in seen and not m.id.startswith("mmproj"):
                data.append(_model_row(m.id, False))
        return {"object": "list", "data": data}

    @api.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        await check_model(body.model)
        think = thinking_enabled(body.reasoning_effort, body.chat_template_kwargs)
        tools = plan_tools(body, think)
        grammar = tools.grammar or grammar_for(body.response_format, body.grammar)
        gen = GenRequest(engine_messages(body.messages, config.media_dir), think,
                         sampling(body, grammar), tools=tools.declarations)
        return await _respond(_Run(engine, gen, stop_list(body.stop), live, request), body.stream,
                              bool(body.stream_options and body.stream_options.include_usage),
                              body.model or loaded_id(), chat=True, tool_names=tools.names)

    @api.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest,
                          request: Request) -> JSONResponse | StreamingResponse:
        await check_model(body.model)
        gen = GenRequest(prompt=body.prompt, params=sampling(body, body.grammar))
        return await _respond(_Run(engine, gen, stop_list(body.stop), live, request), body.stream,
                              bool(body.stream_options and body.stream_options.include_usage),
                              body.model or loaded_id(), chat=False)

    @api.post("/apply-template")
    async def apply_template(body: TemplateRequest) -> dict[str, Any]:
        messages = engine_messages(body.messages, config.media_dir)
        think = thinking_enabled(body.reasoning_effort, body.chat_template_kwargs)
        declared = [declaration(t) for t in body.tools or []]
        tokens = await asyncio.to_thread(engine.tokens, messages, think, declared or None)
        result: dict[str, Any] = {"prompt": "".join(t.piece for t in tokens)}
        if body.with_tokens:  # which pieces are control tokens and which are text
            result["tokens"] = [{"id": t.id, "piece": t.piece, "control": t.special}
                                for t in tokens]
        return result

    vocab: list[Any] = []

    @api.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> dict[str, Any]:
        info = engine.info
        if info is None:
            raise BadRequest("No model is loaded.", None, 503, "model_not_loaded")
        if not vocab:  # the tokenizer only (no weights), in this process, for raw text
            from llama_cpp import Llama

            vocab.append(await asyncio.to_thread(Llama, model_path=info.path, vocab_only=True,
                                                 verbose=False))
        llm = vocab[0]
        ids = llm.tokenize(body.content.encode(), add_bos=body.add_special, special=True)
        if not body.with_pieces:
            return {"tokens": ids}
        pieces = [llm.detokenize([t], special=True).decode("utf-8", "replace") for t in ids]
        return {"tokens": [{"id": t, "piece": p} for t, p in zip(ids, pieces, strict=True)]}

    return _wrap(api, config)


def _wrap(api: FastAPI, config: ServerConfig) -> FastAPI:
    if config.cors_origins:  # off unless the user listed origins
        from fastapi.middleware.cors import CORSMiddleware

        api.add_middleware(CORSMiddleware, allow_origins=config.cors_origins,
                           allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"])
    api.add_middleware(Guard, api_key=config.api_key, max_body_bytes=config.max_body_bytes)
    return api


def _model_row(model_id: str, loaded: bool) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "gemma-desktop",
            "loaded": loaded, "status": {"value": "loaded" if loaded else "unloaded"}}


async def _respond(run: _Run, stream: bool, include_usage: bool, model: str, chat: bool,
                   tool_names: frozenset[str] = frozenset()) -> JSONResponse | StreamingResponse:
    events = run.events().__aiter__()
    first = await anext(events)
    if isinstance(first, Error):  # nothing was sent yet: a real HTTP error
        status = _ERROR_STATUS.get(first.kind, 500)
        return _error(status, first.message, None, first.kind)
    head = {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex, "created": int(time.time()),
            "model": model,
            "object": ("chat.completion" if chat else "text_completion") + (".chunk" if stream and chat else "")}
    output = _Output(tool_names)
    if stream:
        return StreamingResponse(_sse(run, first, events, head, include_usage, chat, output),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    text = {"reasoning_content": "", "content": ""}
    event: PortEvent = first
    while isinstance(event, Delta):
        if chat:
            for delta in output.deltas(event):
                for key in text.keys() & delta.keys():
                    text[key] += delta[key]
        elif event.kind != "thinking":
            text["content"] += event.text
        event = await anext(events)
    if isinstance(event, Error):
        return _error(_ERROR_STATUS.get(event.kind, 500), event.message, None, event.kind)
    reason = _finish_reason(run.stats, run.matcher.hit, bool(output.calls))
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": text["content"]}
        if output.calls:
            message["content"] = text["content"] or None
            message["tool_calls"] = [call.entry() for call in output.calls]
        if text["reasoning_content"]:
            message["reasoning_content"] = text["reasoning_content"]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": reason}
    else:
        choice = {"index": 0, "text": text["content"], "finish_reason": reason}
    return JSONResponse({**head, "choices": [choice], "usage": _usage(run.stats)})


async def _sse(run: _Run, first: PortEvent, events: AsyncIterator[PortEvent], head: dict[str, Any],
               include_usage: bool, chat: bool, output: _Output) -> AsyncIterator[str]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    def pieces(delta: Delta) -> list[dict[str, Any]]:
        if not chat:
            if delta.kind == "thinking":
                return []
            return [{"index": 0, "text": delta.text, "finish_reason": None}]
        return [{"index": 0, "delta": d, "finish_reason": None} for d in output.deltas(delta)]

    try:
        if chat:
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                          "finish_reason": None}])
        event: PortEvent = first
        while isinstance(event, Delta):
            for each in pieces(event):
                yield chunk([each])
            event = await anext(events)
        if isinstance(event, Error):
            yield f"data: {json.dumps(error_body(event.message, 'server_error', event.kind))}\n\n"
            return
        reason = _finish_reason(run.stats, run.matcher.hit, bool(output.calls))
        last: dict[str, Any] = {"index": 0, "finish_reason": reason}
        if chat:
            last["delta"] = {}
        else:
            last["text"] = ""
        yield chunk([last])
        if include_usage:
            yield chunk([], usage=_usage(run.stats))
        yield "data: [DONE]\n\n"
    finally:
        await events.aclose()  # type: ignore[attr-defined]

