"""The whole tool loop with real parts: llama.cpp running the synthetic Gemma 4 (a grammar forces
the call, as the thinking tests force thinking), the official template, the streamed splitter,
consent, and the real mcp-server-time over stdio."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from app.core.chat.prompt import render_prompt
from app.core.chat.thinking import ThinkingSplitter
from app.core.tools import AgentLoop, Consent, PlannedCall, StdioServer, ToolResult, run_turn
from app.core.tools.mcp_hub import McpHub
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

CALL = '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|>'
_CALL_LITERAL = '"' + CALL.replace('"', '\\"') + '"'
CALL_GRAMMAR = (
    f'root ::= "<|channel>thought\\n" word "<channel|>" {_CALL_LITERAL}\n'
    "word ::= [a-z] [a-z] [a-z]\n"
)
ANSWER_GRAMMAR = 'root ::= "It is " [0-9] [0-9] " o clock"\n'


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    import llama_cpp

    from app.core.engine.backends import load_backends

    load_backends()  # a GGML_BACKEND_DL build has no backend, not even the CPU, until loaded
    model = llama_cpp.Llama(
        str(synthetic_gemma4()["model"]), n_ctx=2048, n_threads=2, seed=7, verbose=False
    )
    yield model
    model.close()


@pytest.fixture
def hub() -> Iterator[McpHub]:
    server = StdioServer(
        "time", sys.executable, ("-m", "mcp_server_time", "--local-timezone", "UTC")
    )
    hub = McpHub([server])
    hub.start().result(60)
    yield hub
    hub.close()


def test_model_calls_mcp_server_time_and_answers_from_the_result(llm: Any, hub: McpHub) -> None:
    import llama_cpp

    registry = hub.registry()
    tools = registry.declarations()
    grammars = [CALL_GRAMMAR, ANSWER_GRAMMAR]
    prompts: list[str] = []
    streamed: list[tuple[str, str]] = []

    def generate(messages: list[dict[str, Any]]) -> str:
        prompt = render_prompt(
            CHAT_TEMPLATE,
            messages,
            enable_thinking=True,
            bos_token="<bos>",
            eos_token="<eos>",
            tools=tools,
        )
        prompts.append(prompt)
        grammar = llama_cpp.LlamaGrammar.from_string(grammars.pop(0), verbose=False)
        splitter = ThinkingSplitter()
        raw = ""
        for chunk in llm.create_completion(
            prompt.replace("<bos>", "", 1),
            max_tokens=80,
            temperature=0.7,
            seed=3,
            grammar=grammar,
            stream=True,
        ):
            piece = chunk["choices"][0]["text"]
            raw += piece
            streamed.extend(splitter.feed(piece))
        streamed.extend(splitter.flush())
        return raw

    asked: list[PlannedCall] = []

    def ask(call: PlannedCall) -> Consent:
        asked.append(call)
        return Consent.ALLOW_ONCE

    def execute(call: PlannedCall) -> ToolResult:
        spec = registry.get(call.name)
        assert spec is not None
        return hub.call(spec.server, spec.name, call.arguments).result(60)

    loop = AgentLoop(registry, max_steps=8)
    added = run_turn(loop, [{"role": "user", "content": "Time in Tokyo?"}], generate, execute, ask)

    assert "<|tool>declaration:get_current_time{" in prompts[0]
    assert [(c.name, c.arguments) for c in asked] == [
        ("get_current_time", {"timezone": "Asia/Tokyo"})
    ]
    # The streamed reply was routed: the call as one block, never in the answer.
    assert ("tool_call", CALL) in streamed
    assert all("<|tool_call>" not in text for kind, text in streamed if kind != "tool_call")
    assert [m["role"] for m in added] == ["assistant", "tool", "assistant"]
    result = added[1]["content"]
    assert result["timezone"] == "Asia/Tokyo" and result["datetime"].endswith("+09:00")
    # The second prompt carries the result in the trained shape and keeps the thought.
    assert re.search(
        r"<\|channel>thought\n[a-z]{3}\n<channel\|>"
        + re.escape(CALL)
        + r"<\|tool_response>response:get_current_time\{datetime:<\|\"\|>[^<]+\+09:00<\|\"\|>,",
        prompts[1],
    ), prompts[1][-400:]
    assert re.fullmatch(r"It is \d\d o clock", added[2]["content"])
