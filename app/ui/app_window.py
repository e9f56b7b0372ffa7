"""Builds the window and its collaborators for app.bootstrap (the GUI half of the composition root)."""

from __future__ import annotations

import logging
import os
import threading

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.core.chat.session import ChatSession
from app.core.remote.servers import find_server
from app.core.storage.history import HistoryStore, default_db_path
from app.core.storage.settings import load_settings, save_settings
from app.services.engine_client import EngineClient
from app.ui import theme
from app.ui.main_window import MainWindow
from app.ui.settings_wiring import use_folder

log = logging.getLogger(__name__)


def build_main_window(app: QApplication, model: str | None = None,
                      mmproj: str | None = None) -> MainWindow:
    """Settings, history, engine client and the window, wired; the model (if any) starts loading."""
    app.setWindowIcon(theme.app_icon())
    settings, notice = load_settings()
    # Folders chosen in Settings → Storage win over the defaults for everything in this process.
    use_folder("models", settings.models_dir)
    use_folder("data", settings.data_dir)
    store = HistoryStore(default_db_path())
    interrupted = store.mark_interrupted()  # answers a crash left "streaming"
    session = ChatSession(store)
    client = EngineClient()
    window = MainWindow(settings, store, session, client)

    def save() -> None:
        try:
            save_settings(settings)
        except OSError:
            log.exception("could not save settings")
            window.status.set_message("Settings could not be saved — check the config folder.")

    window.sig_settings_changed.connect(save)

    def shut_down() -> None:
        client.shutdown()
        store.close()

    app.aboutToQuit.connect(shut_down)
    messages = [notice] if notice else []
    if interrupted:
        messages.append(f"{interrupted} answer(s) cut short last time are marked interrupted.")
    window.status.set_message(" ".join(messages))
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # the offline switch: no Hub call may connect
    path = model or settings.model_path
    server = None if model else find_server(settings.remote_server)
    if server is not None:  # the chat runs on a server (Settings → Model → Servers)
        window.status.set_loading(server.id)
        client.use_remote(server)
    elif path:
        window.load_model(path, mmproj if model else (mmproj or settings.mmproj_path))
    else:
        # First start (or the configured model is gone): the welcome screen recommends one.
        from app.ui.welcome import install_welcome

        install_welcome(window, window.models_context(), client)
    # Once the window is up, load what the first image, clip or download will need, off the GUI
    # thread: importing numpy/Pillow/huggingface_hub on first use would freeze it for ~0.3 s.
    QTimer.singleShot(1500, window, _warm_up_imports)
    return window


WARM_MODULES = ("numpy", "PIL.Image", "app.core.media.images", "app.core.media.audio",
                "huggingface_hub.hf_api", "httpx2")


def _warm_up_imports() -> None:
    def run() -> None:
        import importlib

        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - only a head start; the real import reports errors
                log.debug("warm-up import of %s failed", name, exc_info=True)

    threading.Thread(target=run, name="warm-up-imports", daemon=True).start()
