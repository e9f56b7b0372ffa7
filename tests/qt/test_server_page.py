"""Settings → Server and the status bar's API item: the window serves its loaded model over the
OpenAI API (official `openai` client) while its own chat keeps working on the same engine host."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from PySide6.QtCore import QTimer

from app.services.api_server import ServerPlan
from app.ui.settings_pages.server_page import NEEDS_KEY
from tests.fixtures.openai_servers import free_port
from tests.qt.screenshots import make_settings, save

# Random weights give random text; the grammar keeps the model writing until max_tokens (no end).
ENDLESS = 'root ::= "la " root'
SHORT = 'root ::= "Fine" " " "thanks"'


def _turn_on(qtbot: Any, window: Any, port: int, lan: bool = False,
             allow_switch: bool = False) -> Any:
    dialog = window.settings_wiring.open_dialog("Server")
    page = dialog.server_page
    page.enabled.setChecked(True)
    page.port.setValue(port)
    page.lan.setChecked(lan)
    page.allow_switch.setChecked(allow_switch)
    assert dialog.apply()
    return page


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


@pytest.mark.slow
def test_api_shares_the_windows_model_while_the_chat_keeps_working(qtbot, window_env):
    from app.services.engine_client import EngineClient
    from tests.fixtures.gemma4 import synthetic_gemma4

    files = synthetic_gemma4()
    client = EngineClient()
    env = window_env(settings=make_settings(max_tokens=24), client=client)
    window, api = env.window, env.window.api_server
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000):
        client.load_model(str(files["model"]), n_ctx=2048, n_threads=2)
    assert not window.status.api_button.isVisible()  # off by default: no item

    port = free_port()
    page = _turn_on(qtbot, window, port)
    qtbot.waitUntil(lambda: api.running and page.state.text().startswith("Running at"), timeout=5000)
    base = f"http://127.0.0.1:{port}/v1"
    assert page.url.text() == base and api.url == base
    assert window.status.api_button.isVisible()
    assert window.status.api_button.text() == f"API http://127.0.0.1:{port}"
    assert env.settings.server_enabled and env.settings.server_port == port
    save(page.window(), "settings-server-page")

    # The GUI thread keeps turning while the API answers from a worker thread.
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)

    seen_live = threading.Event()
    result: dict[str, Any] = {}

    def stream_then_leave() -> None:
        try:
            with openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=60) as c:
                models = c.models.list().data
                result["models"] = [(m.id, m.model_extra["loaded"]) for m in models]
                stream = c.chat.completions.create(
                    model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Sing"}],
                    max_tokens=20_000, stream=True, extra_body={"grammar": ENDLESS})
                text = ""
                for chunk in stream:
                    for choice in chunk.choices:
                        text += choice.delta.content or ""
                    if seen_live.is_set() and len(text) > 30:
                        break
                stream.close()  # the client leaves mid-answer: the engine stops it
                result["streamed"] = text
                short = c.chat.completions.create(
                    model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Hi"}],
                    max_tokens=20, extra_body={"grammar": SHORT})
                result["short"] = short.choices[0].message.content
        except Exception as exc:  # noqa: BLE001 - reported on the test's thread
            result["error"] = exc

    worker = threading.Thread(target=stream_then_leave, name="openai-client")
    worker.start()
    try:
        qtbot.waitUntil(lambda: api.live == 1, timeout=60_000)
        item = window.status.api_button
        assert item.text() == f"API http://127.0.0.1:{port} · 1 request"
        # The window's own message while the API answer runs: queued in the host, with a visible
        # state, and answered once the API request is gone.
        window.controller.send("Hello from the window")
        assert client.busy
        qtbot.waitUntil(lambda: item.text().endswith("· 1 request · chat waits its turn"), timeout=5000)
        save(window.status, "status-bar-api")
        seen_live.set()
        with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000):
            pass
        assert window.chat_view.last_assistant().markdown
        assert not window.banner.isVisible()
    finally:
        seen_live.set()
        qtbot.waitUntil(lambda: not worker.is_alive(), timeout=120_000)
        worker.join()
        timer.stop()
    assert "error" not in result, result.get("error")
    assert result["models"][0] == ("synthetic-gemma4.gguf", True)
    assert result["streamed"].startswith("la la")
    assert result["short"] == "Fine thanks"
    qtbot.waitUntil(lambda: api.live == 0, timeout=10_000)
    assert item.text() == f"API http://127.0.0.1:{port}"
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert gaps and max(gaps) < 1.0, max(gaps)  # never frozen while serving

    # Off from the page while an API answer streams: that answer ends, the port closes, the
    # item goes away, and the window's engine goes on answering the chat.
    left: dict[str, Any] = {}

    def endless() -> None:
        try:
            with openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=60) as c:
                for _chunk in c.chat.completions.create(
                        model="synthetic-gemma4.gguf", messages=[{"role": "user", "content": "Go"}],
                        max_tokens=20_000, stream=True, extra_body={"grammar": ENDLESS}):
                    pass
        except Exception as exc:  # noqa: BLE001 - the server went away mid-answer
            left["error"] = exc

    worker = threading.Thread(target=endless, name="openai-client")
    worker.start()
    qtbot.waitUntil(lambda: api.live == 1, timeout=60_000)
    dialog = window.settings_wiring.open_dialog("Server")
    dialog.server_page.enabled.setChecked(False)
    assert dialog.apply()
    qtbot.waitUntil(lambda: not api.running and api._op is None, timeout=10_000)
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=30_000)
    worker.join()
    assert not _port_open(port)
    assert not window.status.api_button.isVisible()
    assert dialog.server_page.state.text().startswith("Off")
    dialog.reject()
    with qtbot.waitSignal(window.controller.sig_generation_finished, timeout=120_000):
        window.controller.send("Still there?")
    assert client.connection is not None and client.connection.alive()


def _in_worker(qtbot: Any, work: Any) -> Any:
    """Run `work()` on a thread while the GUI thread keeps turning; its result or its error."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except Exception as exc:  # noqa: BLE001 - raised again on the test's thread
            out["error"] = exc

    worker = threading.Thread(target=run, name="openai-client")
    worker.start()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=180_000)
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.slow
def test_a_request_switches_the_windows_model_only_when_allowed(qtbot, window_env, model_270m):
    from app.core.download.store import ModelStore
    from app.services.engine_client import EngineClient
    from tests.fixtures.gemma4 import synthetic_gemma4

    files = synthetic_gemma4()
    store = ModelStore()
    store.import_local(files["model"], copy=False)
    small = store.import_local(model_270m, copy=False)
    client = EngineClient()
    env = window_env(settings=make_settings(max_tokens=24), client=client)
    window, api = env.window, env.window.api_server
    with qtbot.waitSignal(client.sig_loaded, timeout=120_000):
        client.load_model(str(files["model"]), n_ctx=2048, n_threads=2)
    port = free_port()
    page = _turn_on(qtbot, window, port)
    page.window().reject()
    qtbot.waitUntil(lambda: api.running, timeout=5000)
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                      timeout=120)

    def ask() -> str:
        r = c.chat.completions.create(model=small.filename, max_tokens=6,
                                      messages=[{"role": "user", "content": "Hi"}])
        return str(r.model)

    with pytest.raises(openai.BadRequestError, match="installed but not loaded"):
        _in_worker(qtbot, ask)  # off by default

    page = _turn_on(qtbot, window, port, allow_switch=True)
    page.window().reject()
    qtbot.waitUntil(lambda: api.running and api.plan.allow_switch, timeout=10_000)
    assert _in_worker(qtbot, ask) == small.filename
    assert client.model is not None and client.model.path == str(model_270m)
    assert env.settings.model_path == str(model_270m)  # the window follows, as if picked there
    models = _in_worker(qtbot, lambda: [(m.id, m.model_extra["loaded"]) for m in c.models.list()])
    assert models[0] == (small.filename, True)
    assert ("synthetic-gemma4.gguf", False) in models
    c.close()


def test_no_model_is_503_and_the_item_opens_the_page(qtbot, window_env):
    env = window_env()  # the fake client: no engine, no model
    window, api = env.window, env.window.api_server
    port = free_port()
    page = _turn_on(qtbot, window, port)
    page.window().reject()
    qtbot.waitUntil(lambda: api.running, timeout=5000)
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                       timeout=30) as c, pytest.raises(openai.APIStatusError) as err:
        c.chat.completions.create(model="any", messages=[{"role": "user", "content": "Hi"}])
    assert err.value.status_code == 503
    assert "No model is loaded" in err.value.message
    window.status.api_button.click()
    dialog = window.settings_wiring.dialog
    assert dialog is not None and dialog.stack.currentIndex() == dialog.pages.index(
        dialog.server_page)
    dialog.reject()


def test_other_devices_only_with_a_key(qtbot, window_env):
    env = window_env()
    window, api = env.window, env.window.api_server
    port = free_port()
    dialog = window.settings_wiring.open_dialog("Server")
    page = dialog.server_page
    page.lan.setChecked(True)  # no key yet: refused on the page
    assert not page.lan.isChecked() and page.lan_error.text() == NEEDS_KEY
    # ...and by the server itself, whatever the settings say.
    api.apply(ServerPlan(enabled=True, port=port, lan=True))
    qtbot.waitUntil(lambda: "API key is required" in api.error, timeout=10_000)
    assert not api.running
    assert not _port_open(port)

    page.create_key.click()  # stored 0600, shown masked
    key = page.key.text()
    assert len(key) >= 32 and page.key.echoMode() == page.key.EchoMode.Password
    page.enabled.setChecked(True)
    page.port.setValue(port)
    page.lan.setChecked(True)
    assert page.lan.isChecked() and page.lan_error.text() == ""
    assert dialog.apply()
    qtbot.waitUntil(lambda: api.running and api.plan.lan, timeout=5000)
    qtbot.waitUntil(lambda: page.state.text().startswith("Running at"), timeout=5000)
    save(dialog, "settings-server-lan")
    url = f"http://127.0.0.1:{port}/v1/models"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
    dialog.reject()


def test_port_taken_is_reported_on_the_page(qtbot, window_env):
    env = window_env()
    window, api = env.window, env.window.api_server
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        page = _turn_on(qtbot, window, port)
        message = (f"Port {port} is already in use by another program. Choose another port, or "
                   "stop that program.")
        qtbot.waitUntil(lambda: page.state.text() == message, timeout=10_000)
        assert not api.running
        assert not window.status.api_button.isVisible()
        save(page.window(), "settings-server-port-taken")
    page.port.setValue(free_port())  # another port: it starts
    assert page.window().apply()
    qtbot.waitUntil(lambda: api.running, timeout=5000)
    assert page.state.text().startswith("Running at")
    page.window().reject()



def test_on_at_start_when_it_was_on_and_closed_at_quit(qtbot, window_env):
    port = free_port()
    env = window_env(settings=make_settings(server_enabled=True, server_port=port))
    api = env.window.api_server
    qtbot.waitUntil(lambda: api.running, timeout=5000)
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["status"] == "ok"
    assert env.window.status.api_button.text() == f"API http://127.0.0.1:{port}"
    env.window.close()  # the server's thread is joined here: nothing is left listening
    assert not api.running and api._op is None
    assert not _port_open(port)
