"""AgentLoop: calls, consent, errors and limits, with its messages rendered by the real template."""

from __future__ import annotations

from typing import Any

from app.core.chat.prompt import render_prompt
from app.core.tools import (
    AgentLoop,
    Consent,
    PlannedCall,
    ToolRegistry,
    ToolResult,
    ToolSpec,
    run_turn,
)
from tests.fixtures.gemma4_template import CHAT_TEMPLATE

Q = '<|"|>'
SPECS = [
    ToolSpec("math", "add", "Add two numbers", {"type": "object", "properties": {}}),
    ToolSpec("text", "upper", "Upper-case a text"),
]


def call(name: str, args: str) -> str:
    return f"<|tool_call>call:{name}{{{args}}}<tool_call|>"


def execute(planned: PlannedCall) -> ToolResult:
    if planned.name == "add":
        return ToolResult({"sum": planned.arguments["a"] + planned.arguments["b"]})
    return ToolResult(str(planned.arguments["s"]).upper())


class Script:
    """The model's replies in order; records the prompts it was given (rendered for real)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        self.prompts.append(
            render_prompt(
                CHAT_TEMPLATE,
                messages,
                enable_thinking=True,
                bos_token="<bos>",
                eos_token="<eos>",
                tools=ToolRegistry(SPECS).declarations(),
            )
        )
        return self.replies.pop(0)


def run(
    script: Script, answers: list[Consent] | None = None, **kw: Any
) -> tuple[AgentLoop, list[dict[str, Any]], list[str]]:
    loop = AgentLoop(ToolRegistry(SPECS), **kw)
    asked: list[str] = []

    def ask(planned: PlannedCall) -> Consent:
        asked.append(planned.name)
        return (answers or [Consent.ALLOW_ONCE]).pop(0) if answers else Consent.ALLOW_ONCE

    added = run_turn(loop, [{"role": "user", "content": "go"}], script, execute, ask)
    return loop, added, asked


def test_two_calls_in_one_message_both_run_and_the_model_continues() -> None:
    script = Script(
        f"<|channel>thought\nneed both<channel|>{call('add', 'a:2,b:40')}"
        f"{call('upper', f's:{Q}hi{Q}')}<|tool_response>",
        "Sum 42, text HI.",
    )
    loop, added, asked = run(script)
    assert asked == ["add", "upper"]
    assert [m["role"] for m in added] == ["assistant", "tool", "tool", "assistant"]
    assert added[0]["tool_calls"][0]["function"] == {"name": "add", "arguments": {"a": 2, "b": 40}}
    assert added[1]["content"] == {"sum": 42} and added[2]["content"] == "HI"
    assert added[3] == {"role": "assistant", "content": "Sum 42, text HI."}
    # The second prompt continues the model turn after both results, thinking kept.
    second = script.prompts[1]
    assert second.endswith(
        "<|turn>model\n<|channel>thought\nneed both\n<channel|>"
        '<|tool_call>call:add{a:2,b:40}<tool_call|><|tool_call>call:upper{s:<|"|>hi<|"|>}'
        "<tool_call|><|tool_response>response:add{sum:42}<tool_response|>"
        '<|tool_response>response:upper{value:<|"|>HI<|"|>}<tool_response|>'
    )
    assert "<|tool>declaration:add{" in second
    assert loop.steps == 1


def test_malformed_call_is_shown_and_answered_with_an_error() -> None:
    script = Script(call("add", "a:2,b:") + "<|tool_response>", "Sorry.")
    loop, added, asked = run(script)
    assert asked == []
    assert added[0]["tool_calls"][0]["function"]["name"] == "add"
    error = added[1]["content"]["error"]
    assert error.startswith("malformed call: expected a value") and "position" in error
    assert 'response:add{error:<|"|>malformed call' in script.prompts[1]
    assert added[-1]["content"] == "Sorry."


def test_unknown_tool_gets_an_error_without_asking() -> None:
    _, added, asked = run(Script(call("rm_rf", ""), "ok"))
    assert asked == [] and added[1]["content"] == {"error": "unknown tool 'rm_rf'"}


def test_deny_returns_an_error_result_and_always_allow_stops_asking() -> None:
    script = Script(
        call("upper", f"s:{Q}a{Q}") + call("add", "a:1,b:1"),
        call("upper", f"s:{Q}b{Q}") + call("add", "a:1,b:2"),
        "done",
    )
    loop, added, asked = run(script, [Consent.ALWAYS, Consent.DENY, Consent.DENY])
    assert asked == ["upper", "add", "add"]  # upper was asked once only
    contents = [m["content"] for m in added if m["role"] == "tool"]
    denied = {"error": "the user denied this tool call"}
    assert contents == ["A", denied, "B", denied]
    assert loop.always_allowed == {"text/upper"}


def test_max_steps_ends_the_loop_with_error_results() -> None:
    script = Script(*[call("add", f"a:{i},b:0") for i in range(3)])
    loop, added, _ = run(script, max_steps=2)
    assert loop.steps == 3 and not script.replies
    results = [m["content"] for m in added if m["role"] == "tool"]
    assert results == [
        {"sum": 0},
        {"sum": 1},
        {"error": "not run: the limit of 2 tool steps is reached"},
    ]
    assert added[-1]["role"] == "tool"


def test_preallowed_tools_and_stop() -> None:
    loop = AgentLoop(ToolRegistry(SPECS), always_allowed={"math/add"})
    step = loop.plan_raw(call("add", "a:1,b:1") + call("upper", f"s:{Q}x{Q}"))
    add, upper = step.calls
    assert not loop.needs_consent(add) and loop.needs_consent(upper)
    loop.record(add, execute(add))
    loop.stop()
    assert not loop.allowed(upper)
    messages = loop.finish_step()
    assert messages[2]["content"] == {"error": "stopped by the user"}
    assert loop.plan_raw(call("add", "a:1,b:1")).final


def test_disabled_tool_is_not_declared_and_not_run() -> None:
    registry = ToolRegistry(SPECS, disabled={"text/upper"})
    assert [d["function"]["name"] for d in registry.declarations()] == ["add"]
    step = AgentLoop(registry).plan_raw(call("upper", f"s:{Q}x{Q}"))
    assert step.calls[0].error == "unknown tool 'upper'"


def test_plain_answer_is_final() -> None:
    step = AgentLoop(ToolRegistry(SPECS)).plan_raw("<|channel>thought\nhm<channel|>Hello<turn|>")
    assert step.final and not step.calls and (step.thinking, step.answer) == ("hm", "Hello")
