"""Chat against an OpenAI-compatible endpoint: streamed or not, with thinking, stats and stop.

Thinking is read from `reasoning_content` (llama-server, vLLM and SGLang with a reasoning parser,
DeepSeek; newer vLLM calls it `reasoning`), or from Gemma's own `<|channel>thought…<channel|>`
markers in `content` when the server leaves them there. Tool calls the server parsed
(`tool_calls`, vLLM/SGLang with a tool-call parser, `main.py serve`) come out as Gemma's own
`<|tool_call>…<tool_call|>` blocks, the "tool_call" pieces the app's agent loop reads; calls left
in `content` arrive that way already. Errors keep the partial answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.chat.thinking import ThinkingSplitter
from app.core.chat.tool_calls import CALL_CLOSE, CALL_OPEN, ToolCall, decode_arguments, format_call
from app.core.engine.records import GenerationStats, Reply, SamplingParams
from app.core.remote.media import to_openai_messages
from app.core.remote.sse import SSEParser

OnDelta = Callable[[str, str], None]
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a big model may think a long time before its first token


class RemoteError(Exception):
    """kind: connection | auth | model | dropped | http | protocol; `reply` holds the partial answer."""

    def __init__(self, kind: str, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.reply = reply or Reply(0)


@dataclass(frozen=True)
class Endpoint:
    """Where the server is; `base_url` with or without the trailing `/v1`."""

    base_url: str
    api_key: str | None = None

    @property
    def api_base(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class DeltaRouter:
    """Turns the deltas of one answer into ("thinking" | "answer", text) pieces."""

    def __init__(self) -> None:
        self._splitter = ThinkingSplitter()
        self._calls: dict[int, list[str]] = {}  # index -> [name, arguments so far]

    def feed(self, delta: dict[str, Any]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(("thinking", reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.extend(self._splitter.feed(content))
        for n, call in enumerate(delta.get("tool_calls") or []):
            if not isinstance(call, dict):
                continue
            index = call.get("index", n)
            slot = self._calls.setdefault(index if isinstance(index, int) else n, ["", ""])
            function = call.get("function") or {}
            name, arguments = function.get("name"), function.get("arguments")
            if isinstance(name, str):
                slot[0] += name
            if isinstance(arguments, str):
                slot[1] += arguments
            elif isinstance(arguments, dict):
                slot[1] = json.dumps(arguments)
        return out

    def finish(self) -> list[tuple[str, str]]:
        out = self._splitter.flush()
        for _index, (name, arguments) in sorted(self._calls.items()):
            out.append(("tool_call", _gemma_block(name, arguments)))
        self._calls = {}
        return out


def _gemma_block(name: str, arguments: str) -> str:
    """A parsed call as Gemma writes it; arguments that are not a JSON object stay as they came,
    so the agent loop reports the call as malformed instead of running something else."""
    try:
        return format_call(ToolCall(name, decode_arguments(arguments)))
    except ValueError:
        return f"{CALL_OPEN}call:{name}{arguments}{CALL_CLOSE}"


def request_body(model: str, messages: list[dict[str, Any]], enable_thinking: bool,
                 params: SamplingParams, stream: bool,
                 tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON of one chat request; fields that only some servers know are sent only when set."""
    body: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(messages),
        "stream": stream,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "chat_template_kwargs": {"enable_thinking": enable_thinking},
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if params.top_k:
        body["top_k"] = params.top_k
    if params.min_p:
        body["min_p"] = params.min_p
    if params.seed is not None:
        body["seed"] = params.seed
    if params.grammar:
        body["grammar"] = params.grammar  # llama-server and llama_cpp.server
    if tools:
        body["tools"] = tools  # OpenAI function declarations, as the app's registry makes them
    return body


class RemoteChat:
    """One server; `chat` blocks until the answer ends, `stop` (any thread) ends it early."""

    def __init__(self, endpoint: Endpoint, read_timeout: float = READ_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S),
            headers=endpoint.headers(),
        )
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RemoteChat:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def models(self) -> list[str]:
        """The ids the server lists under /v1/models."""
        with self._request("GET", "/models", None, "") as response:
            data = json.loads(response.read())
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    def stop(self) -> None:
        """Stop the answer in progress: its stream is closed, so the server stops too."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            response.close()

    def chat(self, model: str, messages: list[dict[str, Any]], enable_thinking: bool = False,
             params: SamplingParams | None = None, *, stream: bool = True,
             on_delta: OnDelta | None = None,
             tools: list[dict[str, Any]] | None = None) -> Reply:
        """One answer; raises RemoteError (with the partial reply) when it cannot finish."""
        params = params or SamplingParams()
        self._stop.clear()
        reply = Reply(0, stats=None)
        stats = GenerationStats()
        router = DeltaRouter()
        started = time.perf_counter()
        first: float | None = None

        def emit(pieces: list[tuple[str, str]]) -> None:
            nonlocal first
            for kind, text in pieces:
                if first is None:
                    first = time.perf_counter()
                reply.add(kind, text)
                if on_delta is not None:
                    on_delta(kind, text)

        body = request_body(model, messages, enable_thinking, params, stream, tools)
        n_chunks = 0
        try:
            with self._request("POST", "/chat/completions", body, model, reply) as response:
                if not stream:
                    data = json.loads(response.read())
                    choice = (data.get("choices") or [{}])[0]
                    emit(router.feed(choice.get("message") or {}))
                    stats.finish_reason = choice.get("finish_reason") or "stop"
                    _usage(stats, data.get("usage"))
                else:
                    finished = False
                    for chunk in self._chunks(response):
                        for choice in chunk.get("choices") or []:
                            pieces = router.feed(choice.get("delta") or {})
                            n_chunks += bool(pieces)
                            emit(pieces)
                            if choice.get("finish_reason"):
                                stats.finish_reason = str(choice["finish_reason"])
                                finished = True
                        _usage(stats, chunk.get("usage"))
                    if not finished and not self._stop.is_set():
                        raise httpx.RemoteProtocolError("the stream ended before the answer did")
        except (httpx.TransportError, httpx.StreamError) as exc:
            if not self._stop.is_set():
                emit(router.finish())
                raise RemoteError("dropped", "The connection to the server dropped mid-answer "
                                  f"({exc}); the partial answer is kept.", reply) from exc
        finally:
            with self._lock:
                self._response = None
        emit(router.finish())
        end = time.perf_counter()
        if self._stop.is_set():
            stats.stopped, stats.finish_reason = True, "stopped"
        if not stats.completion_tokens:
            stats.completion_tokens = n_chunks  # servers that send no usage: ~one token a chunk
        stats.ttft_ms = ((first or end) - started) * 1000
        if first is not None and end > first and stats.completion_tokens > 1:
            stats.decode_tok_s = (stats.completion_tokens - 1) / (end - first)
        reply.stats = stats
        return reply

    def _chunks(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        parser = SSEParser()
        try:
            for text in response.iter_text():
                for event in parser.feed(text):
                    chunk = _chunk(event.data)
                    if chunk is None:
                        return
                    yield chunk
        except (httpx.TransportError, httpx.StreamError):
            if self._stop.is_set():
                return
            raise
        for event in parser.close():
            chunk = _chunk(event.data)
            if chunk is None:
                return
            yield chunk

    def _request(self, method: str, path: str, body: dict[str, Any] | None, model: str,
                 reply: Reply | None = None) -> _Open:
        return _Open(self, method, path, body, model, reply or Reply(0))

    def _open(self, method: str, path: str, body: dict[str, Any] | None, model: str,
              reply: Reply) -> httpx.Response:
        url = self.endpoint.api_base + path
        try:
            request = self._client.build_request(method, url, json=body)
            response = self._client.send(request, stream=True)
        except httpx.ConnectError as exc:
            raise RemoteError("connection", f"Could not connect to {self.endpoint.base_url}: "
                              f"{_reason(exc)}. Is the server running, and is the address right?",
                              reply) from exc
        except httpx.TimeoutException as exc:
            raise RemoteError("connection", f"{self.endpoint.base_url} did not answer in time.",
                              reply) from exc
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _http_error(response, self.endpoint, model, reply)
        with self._lock:
            self._response = response
        if self._stop.is_set():  # stop() came while the request was being sent
            response.close()
        return response


class _Open:
    """Context manager for one streamed response (closed on exit, whatever happened)."""

    def __init__(self, chat: RemoteChat, method: str, path: str, body: dict[str, Any] | None,
                 model: str, reply: Reply) -> None:
        self._args = (method, path, body, model, reply)
        self._chat = chat
        self._response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        self._response = self._chat._open(*self._args)
        return self._response

    def __exit__(self, *_exc: object) -> None:
        if self._response is not None:
            self._response.close()


def _chunk(data: str) -> dict[str, Any] | None:
    """One stream chunk; None at `[DONE]`. An error object sent mid-stream is raised."""
    if data.strip() == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise RemoteError("protocol", f"The server sent something that is not JSON: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise RemoteError("protocol", f"The server sent an unexpected chunk: {data[:200]!r}")
    if isinstance(chunk.get("error"), dict):
        raise RemoteError("http", f"The server stopped with an error: {_message(chunk)}")
    return chunk


def _usage(stats: GenerationStats, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    stats.completion_tokens = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        stats.cached_tokens = int(details.get("cached_tokens") or 0)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        if isinstance(data.get("detail"), str):
            return str(data["detail"])
        return str(error)
    return str(data)


def _http_error(response: httpx.Response, endpoint: Endpoint, model: str,
                reply: Reply) -> RemoteError:
    try:
        detail = _message(response.json())
    except ValueError:
        detail = response.text[:300].strip() or response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        what = "needs an API key" if not endpoint.api_key else "refused the API key"
        return RemoteError("auth", f"The server {what} ({status}): {detail}", reply)
    if status == 404 and (model and ("model" in detail.lower() or "not found" in detail.lower())):
        return RemoteError("model", f"The server has no model {model!r} ({status}): {detail}", reply)
    return RemoteError("http", f"The server answered {status}: {detail}", reply)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return "connection refused" if "refused" in text.lower() or not text else text
