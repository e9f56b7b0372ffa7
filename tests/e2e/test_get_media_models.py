"""One click from "this model cannot see images" to a model that can: the projector is fetched from
the (local) Hub, verified, and the model reloads with it — the real downloader and engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.chat.session import ChatSession
from app.core.download import ModelStore
from app.core.storage.history import HistoryStore
from app.core.storage.settings import Settings
from app.services.engine_client import EngineClient
from app.ui.main_window import MainWindow
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401

REPO = "ggml-org/gemma-4-E2B-it-GGUF"
FILE = "gemma-4-E2B-it-Q8_0.gguf"
PROJ = "mmproj-gemma-4-E2B-it-bf16.gguf"


@pytest.fixture()
def window(qtbot, tmp_path: Path, monkeypatch, local_hub: LocalHub):  # noqa: F811
    files = synthetic_gemma4()
    local_hub.add_repo(REPO, {FILE: files["model"], PROJ: files["mmproj"]})
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    store = HistoryStore(tmp_path / "history.db")
    client = EngineClient()
    win = MainWindow(Settings(n_ctx=2048), store, ChatSession(store), client)
    qtbot.addWidget(win)
    win.show()
    yield win, local_hub
    win.close()
    client.shutdown()
    store.close()


def test_get_the_projector_then_the_model_sees_images(qtbot, window):
    win, hub = window
    model = ModelStore().download(REPO, FILE)  # installed earlier without its projector
    with qtbot.waitSignal(win._client.sig_loaded, timeout=120_000) as loaded:
        win.load_model(str(model))
    assert loaded.args[0]["supports_vision"] is False

    with qtbot.waitSignal(win._client.sig_loaded, timeout=180_000) as reloaded:
        win.media.sig_get_projector_requested.emit()  # the notice's "Get it" button
    info = reloaded.args[0]
    assert info["supports_vision"] and info["supports_audio"]
    assert Path(info["path"]) == model
    assert ModelStore().find(REPO, PROJ) is not None
    assert hub.bytes_served(PROJ) >= Path(synthetic_gemma4()["mmproj"]).stat().st_size
    assert hub.bytes_served(FILE) == Path(model).stat().st_size  # the model was not fetched again
