"""The real window with the real engine host: open a GGUF, chat, see thinking then answer, crash, restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from app.ui.app_window import build_main_window
from tests.fixtures.gemma4 import synthetic_gemma4

# Random weights give random text; this grammar pins Gemma 4's reply shape while the model really runs.
THINK_THEN_ANSWER = (
    'root ::= "<|channel>thought\\n" words "<channel|>" words\n'
    'words ::= word (" " word){6,12}\n'
    "word ::= [a-z] [a-z] [a-z] [a-z]?\n"
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


@pytest.fixture()
def window(qtbot, monkeypatch):
    model = synthetic_gemma4()["model"]
    app = QApplication.instance()
    win = build_main_window(app, model=str(model))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitUntil(lambda: win._client.model_info is not None, timeout=120_000)
    params = win.controller._params
    monkeypatch.setattr(win.controller, "_params", lambda *a: {**params(*a), "grammar": THINK_THEN_ANSWER, "seed": 3})
    yield win
    win._client.shutdown()


def _send(qtbot, win, text: str) -> None:
    win.composer.set_text(text)
    with qtbot.waitSignal(win.controller.sig_generation_finished, timeout=120_000):
        win.composer._send()


def test_chat_streams_thinking_then_answer_into_the_window(qtbot, window):
    win = window
    win.composer.set_thinking(True)
    win._settings.enable_thinking = True
    _send(qtbot, win, "Plan a picnic.")
    stored = win.controller._store.thread(win.controller.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    answer = stored[-1]
    assert answer.status == "complete"
    assert answer.thinking and len(answer.thinking.split()) >= 7, answer.thinking
    assert answer.content and "<channel|>" not in answer.content and "<|channel>" not in answer.content
    assert answer.model == "Synthetic Gemma 4 (test)"
    assert win.status.speed_label.text().endswith("tok/s")
    SCREENSHOTS.mkdir(exist_ok=True)
    qtbot.wait(100)  # let the layout settle before the picture
    win.grab().save(str(SCREENSHOTS / "real-engine-thinking.png"))


def test_killed_engine_keeps_the_conversation_and_restarts(qtbot, window):
    win = window
    win.composer.set_text("Tell me a long story.")
    monkey_params = win.controller._params
    win.controller._params = lambda *a: {**monkey_params(*a), "grammar": None, "max_tokens": 4000}
    with qtbot.waitSignal(win._client.sig_engine_crashed, timeout=60_000):
        win.composer._send()
        qtbot.waitUntil(lambda: win._client.reply is not None
                        and (win._client.reply.answer or win._client.reply.thinking) != "",
                        timeout=60_000)
        pid = win._client.host_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as a native crash would
    assert win.banner.isVisible()
    assert win.banner.action_key == "restart"
    stored = win.controller._store.thread(win.controller.conversation_id)
    assert stored[0].content == "Tell me a long story."
    assert stored[-1].status == "interrupted"
    with qtbot.waitSignal(win._client.sig_loaded, timeout=120_000):
        win.banner.sig_action_clicked.emit("restart")
    win.controller._params = monkey_params
    _send(qtbot, win, "Are you back?")
    assert win.controller._store.thread(win.controller.conversation_id)[-1].status == "complete"
