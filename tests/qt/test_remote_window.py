"""The window's chat on OpenAI-compatible servers nobody here wrote (llama-cpp-python's own
`python -m llama_cpp.server`) and on `main.py serve`: Settings → Model → Add a server, then the
real chat streams, thinks, stops, shows stats; a wrong key, an unknown model, a refused
connection and a server killed mid-answer are said in words, and the partial answer stays."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.remote.servers import load_servers, servers_path
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.openai_servers import free_port, gemma_serve, llama_cpp_server, running
from tests.qt.screenshots import make_settings, save

pytestmark = pytest.mark.slow

THINK_THEN_ANSWER = 'root ::= "<|channel>thought\\n" "plan it" "<channel|>" "Hello there"'
ENDLESS = 'root ::= "la " root'
KEY = "remote-window-key-123"


def _script(window: Any, *grammars: str, max_tokens: int = 60) -> None:
    """Each of the window's next answers takes the next grammar, through its real request params."""
    queue = list(grammars)
    params = getattr(window.controller, "_unscripted_params", window.controller._params)
    window.controller._unscripted_params = params

    def scripted(*args: Any) -> dict[str, Any]:
        return {**params(*args), "grammar": queue.pop(0), "seed": 3, "max_tokens": max_tokens}

    window.controller._params = scripted


def _fill_form(qtbot: Any, window: Any, url: str, key: str = "") -> Any:
    """Open Settings → Model → Add a server and type the address (and key) as a user does."""
    dialog = window.settings_wiring.open_dialog("Model")
    box = dialog.model_page.servers
    box.add_button.click()
    assert box.form_frame.isVisible()
    qtbot.keyClicks(box.url, url)
    if key:
        qtbot.keyClicks(box.key, key)
    return box


def _cancel(qtbot: Any, window: Any, box: Any) -> None:
    """Close the form unsaved, and the dialog."""
    box.cancel_button.click()
    assert not box.form_frame.isVisible() and box.servers() == []
    box.window().reject()
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=5000)


def _wait_result(qtbot: Any, box: Any, start: str) -> str:
    qtbot.waitUntil(lambda: box.result.text().startswith(start), timeout=30_000)
    return str(box.result.text())


def _add_server(qtbot: Any, window: Any, url: str, key: str = "", shot: str = "") -> Any:
    """Add the server, pick the first model its /v1/models lists, apply; returns the loaded info."""
    box = _fill_form(qtbot, window, url, key)
    qtbot.waitUntil(lambda: box.model.count() > 0, timeout=30_000)  # listed in the background
    box.test_button.click()
    text = _wait_result(qtbot, box, "Connected to")
    assert f"{box.model.currentText()} is ready" in text
    if shot:
        save(box.window(), shot)
    assert box.save_button.isEnabled()
    box.save_button.click()
    assert not box.form_frame.isVisible() and box.selected() is not None
    client = window._client
    with qtbot.waitSignal(client.sig_loaded, timeout=30_000) as loaded:
        assert box.window().apply()
    box.window().accept()
    return loaded.args[0]


def _media() -> list[Any]:
    """A real PNG and WAV in the attachments folder, as the composer stores them."""
    import io

    import numpy as np
    import soundfile as sf
    from PIL import Image

    from app.core.media.store import sha256_hex, store_attachment
    from app.core.storage.records import Attachment

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    buf = io.BytesIO()
    t = np.arange(16000) / 16000
    sf.write(buf, 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="WAV")
    wav = buf.getvalue()
    return [Attachment("image", store_attachment(png, "png"), sha256_hex(png), "photo.png",
                       "image/png"),
            Attachment("audio", store_attachment(wav, "wav"), sha256_hex(wav), "voice.wav",
                       "audio/wav")]


def _send(qtbot: Any, window: Any, text: str) -> dict[str, Any]:
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000) as done:
        assert window.controller.send(text)
    return dict(done.args[0])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    with running(llama_cpp_server(synthetic_gemma4()["model"], port, log), "/v1/models", port, log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def serve_server(tmp_path_factory):
    files = synthetic_gemma4()
    home = tmp_path_factory.mktemp("serve-home")
    port = free_port()
    log = home / "serve.log"
    cmd = gemma_serve(files["model"], port, "--mmproj", str(files["mmproj"]), "--api-key", KEY)
    with running(cmd, "/health", port, log, {"GEMMA_DESKTOP_HOME": str(home)}):
        yield f"http://127.0.0.1:{port}"


def test_chat_streams_thinks_and_stops_on_llama_cpp_server(qtbot, window_env, llama_server):
    from app.services.engine_client import EngineClient

    client = EngineClient()
    env = window_env(settings=make_settings(enable_thinking=True), client=client)
    window = env.window
    info = _add_server(qtbot, window, llama_server, shot="settings-model-add-server")
    host = llama_server.removeprefix("http://")
    name = str(info["name"])
    assert name == f"synthetic-gemma4 @ {host}" and client.remote is not None
    assert window.status.model_label.text() == name  # shown as a remote model
    assert window.composer.model_chip.text() == name
    assert env.settings.remote_server == client.remote.id
    assert client.connection is None  # no local host runs while a server answers
    assert host in window.composer.footnote.text()  # not "runs on this computer"
    assert host in window.chat_view.empty_state.privacy_hint.text()
    dialog = window.settings_wiring.open_dialog("Model")
    page = dialog.model_page
    assert page.selected_server() == client.remote and page.selected_path() is None
    assert page.active_label.text() == f"In use now: {name}"
    save(dialog, "settings-model-servers")
    dialog.reject()
    qtbot.waitUntil(lambda: window.settings_wiring.dialog is None, timeout=5000)

    _script(window, THINK_THEN_ANSWER, ENDLESS, max_tokens=40)
    deltas: list[tuple[int, str, str]] = []
    client.sig_delta.connect(lambda i, k, t: deltas.append((i, k, t)))
    stats = _send(qtbot, window, "Hi")
    widget = window.chat_view.last_assistant()
    assert widget.markdown == "Hello there" and widget.thinking.text == "plan it"
    assert {k for _i, k, _t in deltas} == {"thinking", "answer"} and len({i for i, _k, _t in deltas}) == 1
    assert stats["completion_tokens"] > 0 and stats["ttft_ms"] > 0 and not stats["stopped"]
    assert "tok/s" in widget.stats_label.text() or widget.stats_label.text()

    # Stop mid-answer: the stream is closed, the text so far stays, stats say stopped.
    window.controller._params = _with_max(window.controller._unscripted_params, 2000)
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000) as done:
        assert window.controller.send("Sing")
        qtbot.waitUntil(lambda: len(window.chat_view.last_assistant().markdown) > 20, timeout=60_000)
        window.controller.stop()
    widget = window.chat_view.last_assistant()
    assert done.args[0]["stopped"] and widget.status == "stopped"
    assert widget.markdown.startswith("la la") and not widget.error_label.isVisible()
    assert not client.busy
    save(window, "remote-chat-window")

    # Back to a local model: the server is let go, a local host answers.
    files = synthetic_gemma4()
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000) as loaded:
        window.load_model(str(files["model"]), n_ctx=1024)
    assert loaded.args[0]["path"] == str(files["model"])
    assert client.remote is None and client.connection is not None
    assert env.settings.remote_server is None
    assert window.status.model_label.text() != name
    assert "this computer" in window.composer.footnote.text()


def test_the_chosen_server_is_used_again_at_start(qtbot, llama_server):
    from PySide6.QtWidgets import QApplication

    from app.core.remote.client import Endpoint, RemoteChat
    from app.core.remote.servers import RemoteServer, save_servers
    from app.core.storage.settings import Settings, save_settings
    from app.ui.app_window import build_main_window

    with RemoteChat(Endpoint(llama_server)) as chat:
        server = RemoteServer(llama_server, chat.models()[0])
    save_servers([server])
    save_settings(Settings(remote_server=server.id, enable_thinking=True))
    window = build_main_window(QApplication.instance())
    qtbot.addWidget(window)
    client = window.controller._client
    try:
        qtbot.waitUntil(lambda: client.model is not None, timeout=30_000)
        assert client.remote == server and client.connection is None
        assert window.status.model_label.text() == server.label
        _script(window, THINK_THEN_ANSWER)
        _send(qtbot, window, "Hi")
        assert window.chat_view.last_assistant().markdown == "Hello there"
    finally:
        client.shutdown()
        window.controller._store.close()


def _with_max(params: Any, max_tokens: int) -> Any:
    def scripted(*args: Any) -> dict[str, Any]:
        return {**params(*args), "grammar": ENDLESS, "max_tokens": max_tokens}

    return scripted


def test_serve_with_a_key_wrong_key_unknown_model_and_refused(qtbot, window_env, serve_server):
    from app.services.engine_client import EngineClient

    client = EngineClient()
    env = window_env(settings=make_settings(enable_thinking=True), client=client)
    window = env.window

    # A wrong key: said as such, in words, before anything is saved.
    box = _fill_form(qtbot, window, serve_server, "not-the-key")
    _wait_result(qtbot, box, "The server refused the API key (401)")
    save(box.window(), "settings-model-add-server-401")
    box.key.clear()
    qtbot.keyClicks(box.key, KEY)
    qtbot.waitUntil(lambda: box.model.count() > 0, timeout=30_000)
    # A model the server does not have.
    box.model.setCurrentText("no-such-model")
    box.test_button.click()
    text = _wait_result(qtbot, box, "127.0.0.1")
    assert "has no model 'no-such-model'" in text
    _cancel(qtbot, window, box)

    # Nobody listening: connection refused.
    box = _fill_form(qtbot, window, f"127.0.0.1:{free_port()}")
    box.test_button.click()
    text = _wait_result(qtbot, box, "Could not connect")
    assert "connection refused" in text
    _cancel(qtbot, window, box)

    info = _add_server(qtbot, window, serve_server, KEY)
    assert str(info["name"]).endswith(serve_server.removeprefix("http://"))
    # The key is kept owner-only, beside (never inside) the settings, and never in a log.
    path = servers_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [s.api_key for s in load_servers()] == [KEY]
    assert KEY not in repr(load_servers())
    from app.core.storage.settings import save_settings

    save_settings(env.settings, path.parent / "settings.json")
    assert KEY not in (path.parent / "settings.json").read_text()
    logs = Path(path.parent).parent.glob("**/*.log")
    assert all(KEY not in p.read_text(errors="replace") for p in logs)

    # serve keeps reasoning apart (reasoning_content): thinking and answer land in their places.
    _script(window, THINK_THEN_ANSWER)
    stats = _send(qtbot, window, "Hi")
    widget = window.chat_view.last_assistant()
    assert widget.markdown == "Hello there" and widget.thinking.text == "plan it"
    assert stats["completion_tokens"] > 0 and stats["prompt_tokens"] > 0

    # An image and a voice clip attached in the window travel inline to the server, whose
    # projector turns them into prompt tokens (many more than the words alone).
    window.controller.new_conversation()
    _script(window, THINK_THEN_ANSWER)
    plain = _send(qtbot, window, "Hi")
    _script(window, THINK_THEN_ANSWER)
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000) as done:
        assert window.controller.send("Hi", _media())
    with_media = dict(done.args[0])
    assert window.chat_view.last_assistant().markdown == "Hello there"
    assert with_media["prompt_tokens"] > plain["prompt_tokens"] + 20

    # Choosing a server whose key has gone stale: the switch fails in words, and the server in
    # use (with the right key) comes back.
    from app.core.remote.servers import RemoteServer

    good = client.remote
    assert good is not None
    switcher = window.settings_wiring.switcher
    with qtbot.waitSignal(switcher.sig_failed, timeout=30_000) as failed:
        assert switcher.switch_remote(RemoteServer(good.base_url, good.model, "stale"))
    assert "refused the API key (401)" in failed.args[0] and "is loaded again" in failed.args[0]
    assert client.remote == good and switcher.current_remote == good
    assert "refused the API key" in window.banner.text_label.text()

def test_a_server_killed_mid_answer_keeps_the_partial_answer(qtbot, window_env, tmp_path):
    from app.services.engine_client import EngineClient

    port = free_port()
    log = tmp_path / "server.log"
    client = EngineClient()
    env = window_env(settings=make_settings(enable_thinking=False), client=client)
    window = env.window
    with running(llama_cpp_server(synthetic_gemma4()["model"], port, log), "/v1/models", port,
                 log) as proc:
        _add_server(qtbot, window, f"http://127.0.0.1:{port}")
        _script(window, ENDLESS, max_tokens=3000)
        with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000):
            assert window.controller.send("Sing")
            qtbot.waitUntil(lambda: len(window.chat_view.last_assistant().markdown) > 20,
                            timeout=60_000)
            proc.kill()  # the server machine dies mid-answer
            proc.wait(10)
    widget = window.chat_view.last_assistant()
    assert widget.markdown.startswith("la la") and widget.status == "error"
    assert widget.error_label.isVisible()
    assert "dropped mid-answer" in widget.error_label.text()
    assert "partial answer is kept" in widget.error_label.text()
    stored = [m for m in env.store.messages(window.controller.conversation_id)
              if m.role == "assistant"]
    assert stored and stored[-1].content.startswith("la la")
    save(window, "remote-chat-dropped")


TIME_SERVER = {"time": {"command": sys.executable,
                        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}}
TOKYO = '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|>'
CALL_THEN_STOP = f'root ::= "<|channel>thought\\\\n" "abc" "<channel|>" {json.dumps(TOKYO)}\n'
ANSWER = 'root ::= "It is " [0-9] [0-9] " o clock"\n'


def test_tools_run_through_serve(qtbot, window_env, serve_server):
    """The window's MCP tools offered to the server's model: serve returns the call as OpenAI
    `tool_calls`, the window asks, runs the real time server and sends the result back."""
    from app.services.engine_client import EngineClient

    client = EngineClient()
    env = window_env(settings=make_settings(enable_thinking=True, mcp_servers=TIME_SERVER),
                     client=client)
    window = env.window
    qtbot.waitUntil(lambda: window.tools.service.ready, timeout=60_000)
    _add_server(qtbot, window, serve_server, KEY)
    _script(window, CALL_THEN_STOP, ANSWER, max_tokens=300)
    kinds: list[str] = []
    client.sig_delta.connect(lambda _i, kind, _t: kinds.append(kind))
    assert window.controller.send("What time is it in Tokyo?")
    qtbot.waitUntil(lambda: bool(_tool_blocks(window))
                    and _tool_blocks(window)[0].consent_buttons is not None, timeout=120_000)
    block = _tool_blocks(window)[0]
    assert block.name == "get_current_time" and "tool_call" in kinds
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000):
        block.consent_buttons.allow_button.click()
    assert block.state == "done"
    assert json.loads(block.result_text)["datetime"].endswith("+09:00")
    answer = window.chat_view.last_assistant()
    assert answer.markdown.startswith("It is ") and answer.status == "complete"
    window.tools.service.shutdown()


def _tool_blocks(window: Any) -> list[Any]:
    widget = window.chat_view.last_assistant()
    return list(widget.tool_blocks) if widget is not None else []
