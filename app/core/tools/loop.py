"""The agent loop's pure logic: model reply → calls → consent → results → next messages.

No I/O here: the caller generates, asks for consent and runs tools (on whatever thread),
so the window, the CLI and the server share one behaviour.

API (one ``AgentLoop`` per user turn)::

    loop = AgentLoop(registry, max_steps=8, always_allowed={"time/get_current_time"})
    step = loop.plan(answer=…, thinking=…, tool_blocks=[…])   # or loop.plan_raw(raw_text)
    if step.final: done (step.limit_reached: the model wanted more than max_steps)
    for call in step.runnable():                              # well-formed, known tools
        if loop.needs_consent(call): loop.consent(call, Consent.ALLOW_ONCE | ALWAYS | DENY)
        if loop.allowed(call): loop.record(call, run_it(call.name, call.arguments))
    messages += loop.finish_step()    # [assistant with tool_calls, tool results…]
    → generate again with messages, add_generation_prompt=True (the template continues the
      model turn after the results), then loop.plan(…) on the new reply.

Calls that are malformed, unknown, denied, or past the step limit get an error result
without running; ``loop.stop()`` makes the next ``plan`` final and ``finish_step`` answers
pending calls with "stopped". ``run_turn`` drives it all synchronously (CLI, tests).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.chat.thinking import ThinkingSplitter
from app.core.chat.tool_calls import ToolCall, ToolCallError, parse_tool_calls
from app.core.tools.registry import ToolRegistry

DEFAULT_MAX_STEPS = 8
DENIED = "the user denied this tool call"  # the error result a denied call gets
_NAME_GUESS = re.compile(r"call:([\w.\-]+)")


class Consent(enum.Enum):
    """The user's answer to "may the model run this tool?"."""

    ALLOW_ONCE = "allow_once"
    ALWAYS = "always"
    DENY = "deny"


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned: text or an object (structured output), or an error text."""

    content: str | dict[str, Any]
    is_error: bool = False

    @staticmethod
    def error(message: str) -> ToolResult:
        """An error result (the model reads it and may try again or answer)."""
        return ToolResult(message, is_error=True)

    def as_message_content(self) -> str | dict[str, Any]:
        """Content of the role-"tool" message; errors go as ``{error: …}``."""
        if self.is_error:
            return {"error": self.content if isinstance(self.content, str) else str(self.content)}
        return self.content


@dataclass
class PlannedCall:
    """One call of a step; ``error`` set means it will not run (malformed, unknown, …)."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    raw: str
    error: str | None = None
    consent: Consent | None = None
    result: ToolResult | None = None

    @property
    def call(self) -> ToolCall:
        """The parsed call."""
        return ToolCall(self.name, self.arguments)


@dataclass
class Step:
    """One model reply with its calls; ``final`` means the turn ends with this reply."""

    answer: str
    thinking: str
    calls: list[PlannedCall] = field(default_factory=list)
    final: bool = False
    limit_reached: bool = False

    def runnable(self) -> list[PlannedCall]:
        """Calls that may run once allowed."""
        return [c for c in self.calls if c.error is None]


class AgentLoop:
    """State of one user turn's tool loop (see the module docstring for the protocol)."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        always_allowed: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self.max_steps = max_steps
        self.always_allowed: set[str] = set(always_allowed)
        self.steps = 0
        self.stopped = False
        self._step: Step | None = None
        self._next_id = 0

    def stop(self) -> None:
        """The user pressed Stop: no further call runs and the next plan is final."""
        self.stopped = True

    def plan_raw(self, raw: str) -> Step:
        """Plan from a complete raw reply (thought channel, answer and call blocks mixed)."""
        splitter = ThinkingSplitter()
        parts: dict[str, str] = {"thinking": "", "answer": ""}
        blocks: list[str] = []
        for kind, text in [*splitter.feed(raw), *splitter.flush()]:
            if kind == "tool_call":
                blocks.append(text)
            else:
                parts[kind] += text
        return self.plan(answer=parts["answer"], thinking=parts["thinking"], tool_blocks=blocks)

    def plan(self, *, answer: str, thinking: str = "", tool_blocks: Sequence[str] = (),
             calls: Sequence[PlannedCall] = ()) -> Step:
        """Turn a finished reply (its splitter pieces) into a step; say which calls may run.

        ``calls``: blocks already read with ``parse_block`` as they streamed (shown live).
        """
        step = Step(answer=answer, thinking=thinking, calls=list(calls))
        for block in tool_blocks:
            step.calls.extend(self.parse_block(block))
        if not step.calls:
            step.final = True
        else:
            self.steps += 1
            if self.stopped:
                step.final = True
                self._fail_all(step, "stopped by the user")
            elif self.steps > self.max_steps:
                step.final = step.limit_reached = True
                self._fail_all(
                    step, f"not run: the limit of {self.max_steps} tool steps is reached"
                )
        self._step = step
        return step

    def parse_block(self, block: str) -> list[PlannedCall]:
        """The calls of one streamed call block (a malformed one is a call with its error)."""
        try:
            calls = parse_tool_calls(block)
        except ToolCallError as exc:
            guess = _NAME_GUESS.search(block)
            name = guess.group(1) if guess else "invalid_call"
            return [PlannedCall(self._new_id(), name, {}, block, error=f"malformed call: {exc}")]
        planned = []
        for call in calls:
            error = None
            if self.registry.get(call.name) is None:
                error = f"unknown tool {call.name!r}"
            planned.append(PlannedCall(self._new_id(), call.name, call.arguments, block, error))
        return planned

    def _new_id(self) -> str:
        self._next_id += 1
        return f"call_{self._next_id}"

    @staticmethod
    def _fail_all(step: Step, reason: str) -> None:
        for call in step.calls:
            if call.error is None:
                call.error = reason

    def _key(self, call: PlannedCall) -> str:
        spec = self.registry.get(call.name)
        return spec.key if spec is not None else call.name

    def needs_consent(self, call: PlannedCall) -> bool:
        """True when the user must be asked before this call runs."""
        return (
            call.error is None
            and call.consent is None
            and (self._key(call) not in self.always_allowed)
        )

    def consent(self, call: PlannedCall, choice: Consent) -> None:
        """Record the user's answer; "always" also allows the tool for the rest of the loop."""
        call.consent = choice
        if choice is Consent.ALWAYS:
            self.always_allowed.add(self._key(call))
        elif choice is Consent.DENY:
            call.error = DENIED

    def allowed(self, call: PlannedCall) -> bool:
        """May this call run now?"""
        return not self.stopped and call.error is None and not self.needs_consent(call)

    def record(self, call: PlannedCall, result: ToolResult) -> None:
        """Store what the tool returned for a call of the current step."""
        call.result = result

    def finish_step(self) -> list[dict[str, Any]]:
        """The assistant message with its calls and one role-"tool" message per call.

        Calls that never ran get their error (or "stopped"/"not run") as the result.
        """
        step = self._step
        if step is None:
            raise RuntimeError("finish_step before plan")
        assistant: dict[str, Any] = {"role": "assistant", "content": step.answer}
        if step.thinking:
            assistant["thinking"] = step.thinking
        if step.calls:
            assistant["tool_calls"] = [c.call.to_openai(c.call_id) for c in step.calls]
        messages = [assistant]
        for call in step.calls:
            result = call.result
            if result is None:
                reason = call.error or ("stopped by the user" if self.stopped else "not run")
                result = call.result = ToolResult.error(reason)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.call_id,
                    "name": call.name,
                    "content": result.as_message_content(),
                }
            )
        return messages


Generate = Callable[[list[dict[str, Any]]], str]
Execute = Callable[[PlannedCall], ToolResult]
AskConsent = Callable[[PlannedCall], Consent]


def run_turn(
    loop: AgentLoop,
    messages: list[dict[str, Any]],
    generate: Generate,
    execute: Execute,
    ask: AskConsent,
    on_step: Callable[[Step], None] | None = None,
) -> list[dict[str, Any]]:
    """Drive the loop to the final reply; return the messages it added (history order).

    ``execute`` reports tool failures as error results; it does not raise.
    """
    added: list[dict[str, Any]] = []
    while True:
        step = loop.plan_raw(generate([*messages, *added]))
        for call in step.runnable():
            if loop.stopped:
                break
            if loop.needs_consent(call):
                loop.consent(call, ask(call))
            if loop.allowed(call):
                loop.record(call, execute(call))
        if on_step is not None:
            on_step(step)
        if step.final and not step.calls:
            final: dict[str, Any] = {"role": "assistant", "content": step.answer}
            if step.thinking:
                final["thinking"] = step.thinking
            added.append(final)
            return added
        added.extend(loop.finish_step())
        if step.final or loop.stopped:
            return added
