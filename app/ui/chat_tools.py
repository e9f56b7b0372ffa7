"""The agent loop in the window: one ``ToolTurn`` per answer, between two generations.

The chat controller generates; when a reply ends with tool calls it hands the planned step
to the turn, which shows each call as a tool block in the answer, asks before each call
(inline: Allow once / Always allow this tool / Deny; "always" is saved in the settings),
runs allowed calls one after the other through the app-wide ``ToolsService`` (MCP servers on
their own thread; the hub's timeout turns a hung server into an error result), shows the
results, and then emits ``sig_step_done`` with the stored record of the step and the messages
to add to the prompt. Nothing here blocks the GUI thread: consent and results are signals.

``stop`` ends the turn at once: a pending question goes away, a late result is ignored, and
calls that did not finish are answered "stopped by the user".
"""

from __future__ import annotations

import uuid
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.storage.records import ToolStep
from app.core.storage.settings import Settings
from app.core.tools.config import McpConfigError, parse_mcp_config
from app.core.tools.loop import AgentLoop, Consent, PlannedCall, Step, ToolResult
from app.core.tools.registry import ToolRegistry
from app.core.tools.transcript import step_record
from app.services.tools import ToolsService
from app.ui.messages import AssistantMessageWidget
from app.ui.tool_block import ToolBlock


class WindowTools(QObject):
    """The tools the window offers: the app-wide MCP servers, filtered by the settings."""

    sig_settings_changed = Signal()  # a tool was "always allowed": the owner saves the settings

    def __init__(self, service: ToolsService, settings: Settings,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self._settings = settings

    def apply_settings(self) -> None:
        """Run the configured MCP servers (restarted only when the configuration changed)."""
        try:
            servers = parse_mcp_config({"mcpServers": self._settings.mcp_servers})
        except McpConfigError:
            servers = []  # the Tools page shows what is wrong with the text
        self.service.apply(servers)

    def registry(self) -> ToolRegistry:
        """The tools switched on, from the servers that run now (empty when tools are off)."""
        if not self._settings.tools:
            return ToolRegistry()
        return self.service.registry(self._settings.disabled_tools)

    def begin_turn(self) -> ToolTurn | None:
        """A turn's tool loop, or None when no tool is offered (the chat goes on without)."""
        registry = self.registry()
        if not registry.enabled():
            return None
        return ToolTurn(self, registry)

    def remember_always(self, key: str) -> None:
        if key not in self._settings.always_allowed_tools:
            self._settings.always_allowed_tools.append(key)
            self.sig_settings_changed.emit()

    @property
    def max_steps(self) -> int:
        return self._settings.tool_max_steps

    @property
    def always_allowed(self) -> list[str]:
        return list(self._settings.always_allowed_tools)


class ToolTurn(QObject):
    """The calls of one answer: plan, ask, run, show; ``sig_step_done`` after each step."""

    sig_step_done = Signal(object, list, bool)  # ToolStep record, prompt messages, turn ends

    def __init__(self, tools: WindowTools, registry: ToolRegistry) -> None:
        super().__init__(tools)
        self._tools = tools
        self.registry = registry
        self.declarations = registry.declarations()
        self.loop = AgentLoop(registry, max_steps=tools.max_steps,
                              always_allowed=tools.always_allowed)
        self._prefix = uuid.uuid4().hex[:8]  # the service's call ids are shared app-wide
        self._widget: AssistantMessageWidget | None = None
        self._blocks: dict[str, ToolBlock] = {}
        self._step: Step | None = None
        self._live: list[PlannedCall] = []  # calls of the reply still being written
        self._queue: list[PlannedCall] = []
        self._running: PlannedCall | None = None
        self._asking: PlannedCall | None = None
        self._seconds: float | None = None
        tools.service.sig_call_finished.connect(self._on_service_call_finished)

    @property
    def active(self) -> bool:
        """A step's calls are being asked about or run (no generation is running)."""
        return self._step is not None

    @property
    def asking(self) -> PlannedCall | None:
        """The call waiting for the user's answer."""
        return self._asking

    def add_block(self, text: str, widget: AssistantMessageWidget | None) -> None:
        """A call block just streamed: its calls show at once (they run when the reply ends)."""
        calls = self.loop.parse_block(text)
        self._live.extend(calls)
        self._widget = widget
        for call in calls:
            self._show_call(call)

    def plan(self, answer: str, thinking: str) -> Step:
        """The step of the finished reply, with the calls that streamed in it."""
        calls, self._live = self._live, []
        return self.loop.plan(answer=answer, thinking=thinking, calls=calls)

    def run(self, step: Step, widget: AssistantMessageWidget | None,
            thinking_seconds: float | None = None) -> None:
        """Show the step's calls and work through them (asking first where needed)."""
        self._step = step
        self._seconds = thinking_seconds
        self._queue = list(step.calls)
        if widget is not self._widget:
            self.rebind(widget)
        for call in step.calls:
            self._show_call(call)
        self._advance()

    def rebind(self, widget: AssistantMessageWidget | None) -> None:
        """The answer's widget changed (its conversation was left or opened again)."""
        self._widget = widget
        self._blocks = {}
        for call in self._step.calls if self._step is not None else self._live:
            self._show_call(call)
        if self._asking is not None:
            self._ask(self._asking)

    def _show_call(self, call: PlannedCall) -> None:
        """Create the call's block if it has none yet, and show where the call stands."""
        if self._widget is None:
            return
        block = self._blocks.get(call.call_id)
        if block is None:
            self._blocks[call.call_id] = block = self._widget.add_tool_block(
                call.name, widget_arguments(call), self._server(call))
            block.set_state("called")
        if call.result is not None:
            block.set_result(call.result.content, is_error=call.result.is_error)
        elif call is self._running:
            block.set_state("running")
        elif call.error is not None and self._step is not None:
            self._show_error(call)

    def stop(self) -> ToolStep | None:
        """End the turn now; the record of the step in progress (calls answered "stopped")."""
        self.loop.stop()
        if self._step is None:
            return None
        self._close_question()
        self._running = None
        self._queue = []
        return self._end_step(emit=False)

    def close(self) -> None:
        """The answer is over: stop listening for results and go."""
        self._tools.service.sig_call_finished.disconnect(self._on_service_call_finished)
        self.deleteLater()

    # ---- the calls, one after the other ------------------------------------------------------

    def _advance(self) -> None:
        while self._queue and not self.loop.stopped:
            call = self._queue[0]
            if call.error is None and self.loop.needs_consent(call):
                self._asking = call
                self._ask(call)
                return
            if self.loop.allowed(call):
                spec = self.registry.get(call.name)
                assert spec is not None  # the loop only lets known tools run
                self._running = call
                block = self._blocks.get(call.call_id)
                if block is not None:
                    block.set_state("running")
                self._tools.service.call(self._id(call), spec.server, spec.name, call.arguments)
                return
            self._queue.pop(0)
            self._show_error(call)
        if self._step is not None and not self.loop.stopped:
            self._end_step(emit=True)

    def _ask(self, call: PlannedCall) -> None:
        block = self._blocks.get(call.call_id)
        if block is not None and block.consent_buttons is None:
            block.ask_consent().sig_answered.connect(
                lambda choice, c=call: self._on_consent_answered(c, choice))

    def _on_consent_answered(self, call: PlannedCall, choice: Consent) -> None:
        if call is not self._asking or self.loop.stopped:
            return
        self._asking = None
        self.loop.consent(call, choice)
        if choice is Consent.ALWAYS:
            spec = self.registry.get(call.name)
            if spec is not None:
                self._tools.remember_always(spec.key)
        self._advance()

    def _on_service_call_finished(self, call_id: str, result: ToolResult) -> None:
        call = self._running
        if call is None or call_id != self._id(call):
            return  # another turn's, or a call this turn no longer waits for (stopped)
        self._running = None
        self.loop.record(call, result)
        self._queue.pop(0)
        block = self._blocks.get(call.call_id)
        if block is not None:
            block.set_result(result.content, is_error=result.is_error)
        self._advance()

    def _end_step(self, *, emit: bool) -> ToolStep:
        step = self._step
        assert step is not None
        messages = self.loop.finish_step()  # fills the results of calls that never ran
        for call in step.calls:
            block = self._blocks.get(call.call_id)
            if block is not None and not block.result_text and call.result is not None:
                self._show_error(call)
        record = step_record(step, {c.name: self._server(c) for c in step.calls},
                             self._seconds)
        self._step = None
        if emit:
            self.sig_step_done.emit(record, messages, step.final)
        return record

    # ---- helpers -----------------------------------------------------------------------------

    def _id(self, call: PlannedCall) -> str:
        return f"{self._prefix}-{call.call_id}"

    def _server(self, call: PlannedCall) -> str:
        spec = self.registry.get(call.name)
        return spec.server if spec is not None and call.error is None else ""

    def _show_error(self, call: PlannedCall) -> None:
        block = self._blocks.get(call.call_id)
        if block is None:
            return
        denied = call.consent is Consent.DENY
        if denied:
            block.set_state("denied")
        result = call.result or ToolResult.error(call.error or "not run")
        block.set_result(result.content, is_error=True)

    def _close_question(self) -> None:
        call, self._asking = self._asking, None
        block = self._blocks.get(call.call_id) if call is not None else None
        if block is not None and block.consent_buttons is not None:
            block.consent_buttons.hide()
            block.consent_buttons.deleteLater()
            block.consent_buttons = None


def wire_window_tools(window: Any, settings: Settings) -> WindowTools:
    """The window's tools: one app-wide ToolsService (its servers start in the background now),
    offered by the chat, shown by Settings → Tools, restarted when applied settings change them."""
    service = ToolsService(parent=window)
    ToolsService.set_app_wide(service)
    tools = WindowTools(service, settings, window)
    window.controller.tools = tools
    tools.sig_settings_changed.connect(window.sig_settings_changed)
    window.settings_wiring.sig_applied.connect(lambda _settings: tools.apply_settings())
    tools.apply_settings()
    return tools


def close_window_tools(tools: WindowTools) -> None:
    """The window closes: its servers stop in the background."""
    if ToolsService.app_wide() is tools.service:
        ToolsService.set_app_wide(None)
    tools.service.release()


def widget_arguments(call: PlannedCall) -> Any:
    """What a live call's block shows: a malformed call shows what the model wrote."""
    return call.raw if call.error and call.error.startswith("malformed") else call.arguments
