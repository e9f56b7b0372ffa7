"""Request bodies of the OpenAI-compatible endpoints, validated by pydantic (bad input: 400)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # as vLLM: unknown fields are not an error


# A function name as the Gemma 4 call format can write it (`call:NAME{`), within OpenAI's 64.
FUNCTION_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"


class FunctionCall(_Body):
    name: str = Field(pattern=FUNCTION_NAME)  # the template writes it as prompt text
    arguments: str | dict[str, Any] = ""  # OpenAI sends a JSON string; a dict is taken as is


class ToolCallIn(_Body):
    """A call in an assistant message of the history (what the server returned before)."""

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallIn] | None = None  # assistant messages
    tool_call_id: str | None = None  # tool messages: the call this is the result of
    name: str | None = None


class FunctionDef(_Body):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema (an object's)


class ToolDef(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str = Field(min_length=1)


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Body):
    include_usage: bool = False


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")  # llama-server's form


class _Sampling(_Body):
    model: str = ""
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    grammar: str | None = None  # llama-server's extension: a GBNF grammar


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True


class CompletionRequest(_Sampling):
    prompt: str


class TokenizeRequest(_Body):
    content: str
    add_special: bool = False
    with_pieces: bool = False


class TemplateRequest(_Body):
    messages: list[Message] = Field(min_length=1)
    reasoning_effort: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ToolDef] | None = None  # rendered as the chat endpoint would declare them
    with_tokens: bool = False  # our extension: also the tokens, each marked control or text
