"""The agent loop in the real window: the real engine host running the synthetic Gemma 4 (a grammar
makes it call the tool, as the thinking tests force thinking), the official template, the real
`mcp-server-time` over stdio, consent in the transcript, tool blocks, history and export."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from app.core.storage.settings import Settings, save_settings
from app.core.tools.loop import Consent
from app.ui.app_window import build_main_window
from app.ui.main_window import MainWindow
from app.ui.tool_block import ToolBlock
from tests.fixtures.gemma4 import synthetic_gemma4

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
TIME_SERVER = {"time": {"command": sys.executable,
                        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}}


def _call(zone: str) -> str:
    return f'<|tool_call>call:get_current_time{{timezone:<|"|>{zone}<|"|>}}<tool_call|>'


def _literal(text: str) -> str:
    return json.dumps(text)  # a GBNF string literal is JSON-quoted text


def _grammar(*calls: str) -> str:
    """A short thought, then exactly these calls (as the model was trained to write them)."""
    return (f'root ::= "<|channel>thought\\n" word "<channel|>" {" ".join(map(_literal, calls))}\n'
            "word ::= [a-z] [a-z] [a-z]\n")


ANSWER = 'root ::= "It is " [0-9] [0-9] " o clock"\n'


def _open_window(qtbot: Any, servers: dict[str, Any]) -> MainWindow:
    save_settings(Settings(mcp_servers=servers, enable_thinking=True))
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    win = build_main_window(app, model=str(synthetic_gemma4()["model"]))
    qtbot.addWidget(win)
    win.resize(1100, 860)
    win.show()
    qtbot.waitUntil(lambda: win._client.model_info is not None, timeout=120_000)
    qtbot.waitUntil(lambda: win.tools.service.ready, timeout=60_000)
    assert {s.state for s in win.tools.service.statuses()} == {"running"}
    return win


def _close_window(win: MainWindow) -> None:
    win.controller.stop()
    win.tools.service.shutdown()
    win._client.shutdown()
    assert win._client.wait_closed()


@pytest.fixture()
def window(qtbot: Any) -> Iterator[MainWindow]:
    win = _open_window(qtbot, TIME_SERVER)
    yield win
    _close_window(win)


HANG_SERVER = """
import asyncio
from mcp.server.mcpserver import MCPServer

server = MCPServer("slow")

@server.tool()
async def hang() -> str:  # never answers
    await asyncio.Event().wait()
    return ""

server.run()
"""


@pytest.fixture()
def hang_window(qtbot: Any, tmp_path: Path) -> Iterator[MainWindow]:
    script = tmp_path / "hang_server.py"
    script.write_text(HANG_SERVER)
    win = _open_window(qtbot, {"slow": {"command": sys.executable, "args": [str(script)]}})
    yield win
    _close_window(win)


def _script(win: MainWindow, *grammars: str) -> list[dict[str, Any]]:
    """Each generation of the window takes the next grammar, through the real request's params."""
    queue = list(grammars)
    sent: list[dict[str, Any]] = []
    params = win.controller._params

    def scripted(*args: Any) -> dict[str, Any]:
        value = {**params(*args), "grammar": queue.pop(0), "seed": 3, "max_tokens": 120}
        sent.append(value)
        return value

    win.controller._params = scripted  # type: ignore[method-assign]
    return sent


def _blocks(win: MainWindow) -> list[ToolBlock]:
    widget = win.chat_view.last_assistant()
    return widget.tool_blocks if widget is not None else []


def _wait_consent(qtbot: Any, win: MainWindow, index: int = 0) -> ToolBlock:
    qtbot.waitUntil(lambda: len(_blocks(win)) > index
                    and _blocks(win)[index].consent_buttons is not None, timeout=120_000)
    return _blocks(win)[index]


def _ask(qtbot: Any, win: MainWindow, text: str) -> ToolBlock:
    """Send a message; the first call's block once it asks for permission."""
    win.composer.set_text(text)
    win.composer._send()
    return _wait_consent(qtbot, win)


def _stored(win: MainWindow) -> Any:
    return win.controller._store.thread(win.controller.conversation_id)[-1]


def test_allow_once_runs_the_time_server_and_the_model_answers(qtbot: Any, window: MainWindow,
                                                              tmp_path: Path) -> None:
    win = window
    sent = _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    live: list[tuple[str, list[str], bool]] = []  # what the window showed as the call streamed in
    win._client.sig_delta.connect(lambda _id, kind, text: live.append(
        (kind, [b.state for b in _blocks(win)], win._client.busy)) if kind == "tool_call" else None)
    block = _ask(qtbot, win, "What time is it in Tokyo?")
    # The block was there as soon as the call streamed, while the reply was still being written.
    assert live == [("tool_call", ["called"], True)]
    assert block.state == "waiting" and block.name == "get_current_time"
    assert '"timezone": "Asia/Tokyo"' in block.args_view.text()
    assert win.controller.busy and not win._client.busy  # waiting for the user, not the model
    SCREENSHOTS.mkdir(exist_ok=True)
    qtbot.wait(150)
    win.grab().save(str(SCREENSHOTS / "window-tool-consent.png"))

    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        block.consent_buttons.allow_button.click()  # type: ignore[union-attr]
    assert block.state == "done"
    result = json.loads(block.result_text)
    assert result["timezone"] == "Asia/Tokyo" and result["datetime"].endswith("+09:00")
    assert len(sent) == 2  # the model was asked again, with the result
    answer = win.chat_view.last_assistant()
    assert answer is not None and answer.markdown.startswith("It is ")
    assert "<|tool_call>" not in answer.markdown

    stored = _stored(win)
    assert stored.status == "complete" and stored.content.startswith("It is ")
    (step,) = stored.tool_steps
    (call,) = step.calls
    assert (call.name, call.arguments, call.server) == (
        "get_current_time", {"timezone": "Asia/Tokyo"}, "time")
    assert not call.is_error and call.result["datetime"].endswith("+09:00")
    assert len(step.thinking) == 3  # the forced three-letter thought, kept with its call
    # The prompt of the next turn replays the call and its result in the trained shape.
    replay = win.controller._session.engine_messages(win.controller.conversation_id)
    assert [m["role"] for m in replay] == ["user", "assistant", "tool", "assistant"]
    block.set_expanded(True)  # the picture shows what the user sees on a click: args and result
    qtbot.wait(150)
    win.grab().save(str(SCREENSHOTS / "window-tool-finished.png"))

    # Reload: the conversation opened again shows the same blocks, from the history.
    conversation = win.controller.conversation_id
    win.controller.new_conversation()
    win.controller.open_conversation(conversation)
    (shown,) = _blocks(win)
    assert shown.state == "done" and json.loads(shown.result_text) == result
    assert win.chat_view.last_assistant().markdown == stored.content  # type: ignore[union-attr]

    # Export and import carry the call and its result.
    store = win.controller._store
    folder = store.export_files(conversation, tmp_path / "export").parent
    imported = store.import_json(json.loads((folder / "conversation.json").read_text()), folder)
    assert store.thread(imported.id)[-1].tool_steps == stored.tool_steps
    win.controller.open_conversation(imported.id)
    assert [b.state for b in _blocks(win)] == ["done"]


def test_deny_gives_the_model_an_error_result(qtbot: Any, window: MainWindow) -> None:
    win = window
    sent = _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    block = _ask(qtbot, win, "What time is it in Tokyo?")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        block.consent_buttons.deny_button.click()  # type: ignore[union-attr]
    assert block.state == "denied" and "denied" in block.result_text
    assert len(sent) == 2  # the model went on after the error result
    stored = _stored(win)
    (call,) = stored.tool_steps[0].calls
    assert call.is_error and "denied" in str(call.result) and call.server == ""
    assert stored.status == "complete" and stored.content.startswith("It is ")
    assert win._settings.always_allowed_tools == []


def test_two_calls_in_one_reply_and_always_allow(qtbot: Any, window: MainWindow) -> None:
    win = window
    sent = _script(win, _grammar(_call("Asia/Tokyo"), _call("Europe/London")), ANSWER,
                   _grammar(_call("Asia/Tokyo")), ANSWER)
    first = _ask(qtbot, win, "Tokyo and London?")
    assert len(_blocks(win)) == 2
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        first.consent_buttons.always_button.click()  # type: ignore[union-attr]
    # "Always" covered the second call of the same tool: both ran, nobody was asked again.
    assert [b.state for b in _blocks(win)] == ["done", "done"]
    results = [json.loads(b.result_text)["timezone"] for b in _blocks(win)]
    assert results == ["Asia/Tokyo", "Europe/London"]
    assert win._settings.always_allowed_tools == ["time/get_current_time"]
    # Saved in the settings, so the next answer runs it without a question.
    win.composer.set_text("And Tokyo again?")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()
    assert [b.state for b in _blocks(win)] == ["done"] and len(sent) == 4


def test_a_malformed_call_is_shown_and_answered_with_an_error(qtbot: Any,
                                                              window: MainWindow) -> None:
    win = window
    broken = '<|tool_call>call:get_current_time{timezone:Asia/Tokyo}<tool_call|>'
    sent = _script(win, _grammar(broken), ANSWER)
    win.composer.set_text("Time?")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()
    (block,) = _blocks(win)
    assert block.state == "error" and "malformed" in block.result_text
    assert "timezone:Asia/Tokyo" in block.args_view.text()  # what the model wrote
    assert len(sent) == 2 and _stored(win).status == "complete"


def test_stop_while_asking_ends_the_loop_at_once(qtbot: Any, window: MainWindow) -> None:
    win = window
    sent = _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    block = _ask(qtbot, win, "What time is it in Tokyo?")
    with qtbot.waitSignal(win.controller.sig_busy_changed, timeout=5_000) as busy:
        win.composer.sig_stop_requested.emit()
    assert busy.args == [False] and not win.controller.busy
    assert block.consent_buttons is None and "stopped" in block.result_text
    qtbot.wait(500)
    assert len(sent) == 1 and not win._client.busy  # no further tool run or generation
    stored = _stored(win)
    assert stored.status == "stopped"
    (call,) = stored.tool_steps[0].calls
    assert call.is_error and "stopped" in str(call.result)
    # The chat goes on after a stop.
    _script(win, ANSWER)
    win.composer.set_text("Never mind.")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()
    assert _stored(win).status == "complete"


def test_consent_answer_reaches_the_loop_only_once(qtbot: Any, window: MainWindow) -> None:
    """A second click on a consent button that was already answered changes nothing."""
    win = window
    _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    block = _ask(qtbot, win, "Time in Tokyo?")
    buttons = block.consent_buttons
    assert buttons is not None
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        buttons.sig_answered.emit(Consent.ALLOW_ONCE)
        buttons.sig_answered.emit(Consent.DENY)
    assert block.state == "done"


def test_leaving_and_reopening_the_chat_keeps_the_question(qtbot: Any, window: MainWindow) -> None:
    win = window
    _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    _ask(qtbot, win, "Time in Tokyo?")
    conversation = win.controller.conversation_id
    win.controller.new_conversation()  # the question waits while another chat is shown
    assert win.controller.busy
    win.controller.open_conversation(conversation)
    block = _wait_consent(qtbot, win)
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        block.consent_buttons.allow_button.click()  # type: ignore[union-attr]
    assert block.state == "done" and _stored(win).status == "complete"


def test_settings_tools_page_shows_the_apps_servers_and_applies(qtbot: Any,
                                                                window: MainWindow) -> None:
    win = window
    dialog = win.settings_wiring.open_dialog("Tools")
    page = dialog.tools_page
    assert page.service is win.tools.service  # no second set of servers
    assert page.server_rows()[0][:2] == ("time", "running")
    applied = list(win.tools.service.servers)
    # Trying other servers from the page, then closing without Apply: the applied ones are back.
    other = {"paris": {**TIME_SERVER["time"],
                       "args": ["-m", "mcp_server_time", "--local-timezone", "Europe/Paris"]}}
    page.config.setPlainText(json.dumps({"mcpServers": other}))
    page.start_button.click()
    assert [s.name for s in win.tools.service.servers] == ["paris"]
    dialog.reject()
    assert win.tools.service.servers == applied
    qtbot.waitUntil(lambda: win.tools.service.ready, timeout=60_000)
    assert win.tools.service.statuses()[0].state == "running"
    assert win.controller.tools is not None and win.controller.tools.begin_turn() is not None
    # Tools switched off in the settings: nothing is offered, the chat answers plainly.
    changed = win._settings.copy()
    changed.tools = False
    win.settings_wiring.apply(changed)
    assert win.controller.tools.begin_turn() is None
    sent = _script(win, ANSWER)
    win.composer.set_text("Time?")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()
    assert len(sent) == 1 and _stored(win).tool_steps == ()
    # Servers removed in the settings: the app's servers stop.
    changed = win._settings.copy()
    changed.mcp_servers = {}
    win.settings_wiring.apply(changed)
    assert win.tools.service.statuses() == []


HANG_CALL = "<|tool_call>call:hang{}<tool_call|>"


def test_stop_while_a_tool_runs_ends_at_once(qtbot: Any, hang_window: MainWindow) -> None:
    win = hang_window
    sent = _script(win, _grammar(HANG_CALL), ANSWER)
    block = _ask(qtbot, win, "Wait for it.")
    block.consent_buttons.allow_button.click()  # type: ignore[union-attr]
    assert block.state == "running"
    qtbot.wait(300)
    with qtbot.waitSignal(win.controller.sig_busy_changed, timeout=5_000) as busy:
        win.composer.sig_stop_requested.emit()
    assert busy.args == [False] and "stopped" in block.result_text
    qtbot.wait(500)
    assert len(sent) == 1 and not win._client.busy
    (call,) = _stored(win).tool_steps[0].calls
    assert call.is_error and "stopped" in str(call.result) and _stored(win).status == "stopped"


def test_a_hanging_tool_times_out_and_the_chat_goes_on(qtbot: Any, hang_window: MainWindow) -> None:
    win = hang_window
    service = win.tools.service
    service.call_timeout_s = 2.0  # the hub's own timeout, made short for the test
    service.configure(service.servers)
    qtbot.waitUntil(lambda: service.ready, timeout=60_000)
    sent = _script(win, _grammar(HANG_CALL), ANSWER)
    block = _ask(qtbot, win, "Wait for it.")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=60_000):
        block.consent_buttons.allow_button.click()  # type: ignore[union-attr]
    assert block.state == "error" and "no answer" in block.result_text and len(sent) == 2
    (call,) = _stored(win).tool_steps[0].calls
    assert call.is_error and _stored(win).status == "complete"


def test_stop_while_the_model_answers_the_result_keeps_the_step(qtbot: Any,
                                                               window: MainWindow) -> None:
    win = window
    rambling = 'root ::= "It is" (" " [a-z] [a-z] [a-z])+\n'  # never ends before max_tokens
    sent = _script(win, _grammar(_call("Asia/Tokyo")), rambling)
    block = _ask(qtbot, win, "Time in Tokyo?")
    block.consent_buttons.allow_button.click()  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: win._client.reply is not None and len(sent) == 2
                    and win._client.reply.answer.startswith("It is "), timeout=60_000)
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=30_000):
        win.composer.sig_stop_requested.emit()
    stored = _stored(win)
    assert stored.status == "stopped" and stored.content.startswith("It is")
    assert not stored.tool_steps[0].calls[0].is_error and block.state == "done"
    assert len(sent) == 2 and not win.controller.busy


def test_the_step_limit_of_the_settings_ends_the_loop(qtbot: Any, window: MainWindow) -> None:
    win = window
    win._settings.tool_max_steps = 1
    win._settings.always_allowed_tools = ["time/get_current_time"]
    sent = _script(win, _grammar(_call("Asia/Tokyo")), _grammar(_call("Europe/London")), ANSWER)
    win.composer.set_text("Keep asking.")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()
    # Step 1 ran; the model called again, past the limit: shown, answered "not run", and over.
    assert len(sent) == 2 and [b.state for b in _blocks(win)] == ["done", "error"]
    assert "limit of 1 tool steps" in _blocks(win)[1].result_text
    stored = _stored(win)
    assert stored.status == "complete" and len(stored.tool_steps) == 2


def test_always_allow_is_saved_to_the_settings_file(qtbot: Any, window: MainWindow) -> None:
    from app.core.storage.settings import load_settings

    win = window
    _script(win, _grammar(_call("Asia/Tokyo")), ANSWER)
    block = _ask(qtbot, win, "Time?")
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        block.consent_buttons.always_button.click()  # type: ignore[union-attr]
    assert load_settings()[0].always_allowed_tools == ["time/get_current_time"]
