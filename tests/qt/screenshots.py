"""Offscreen screenshots of the main window's states, and the fake engine the widget tests use.

Run by hand: `QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.qt.screenshots` writes
screenshots/<theme>-<state>.png (1200x800) for empty, streaming, answer, crashed.

FakeEngineClient has EngineClient's signals and methods and emits what a test tells it to.
It exists for tests about widgets (layout, streaming display, buttons), never for inference.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

from app.core.engine.records import GenerationStats, ModelInfo, Reply

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "screenshots"
STATES = ("empty", "streaming", "answer", "crashed")

THINKING = (
    "The user wants a Python function that reverses a string. The idiomatic way is slicing "
    "with a step of -1, which walks the sequence backwards. ",
    "I should keep the answer short: a typed function, one example, and a sentence on why "
    "it works. Mentioning that it also works on lists is a nice touch.",
)
ANSWER = (
    "Here is the **simplest** way, using slicing:\n\n",
    "```python\ndef reverse(text: str) -> str:\n    \"\"\"Return text backwards.\"\"\"\n",
    "    return text[::-1]\n\n\nprint(reverse(\"Gemma\"))  # ammeG\n```\n\n",
    "The slice `[::-1]` starts at the end and steps backwards one character at a time.\n\n",
    "- It works on any sequence, lists and tuples too.\n- It runs in *O(n)* time.\n",
)
STATS = {"prompt_tokens": 1234, "completion_tokens": 96, "cached_tokens": 1100, "ttft_ms": 182.0,
         "decode_tok_s": 41.7, "n_past": 1330, "n_ctx": 8192, "stopped": False,
         "finish_reason": "stop"}
MODEL_INFO = {"name": "gemma-4-E4B-it-Q4_K_M", "path": "/models/gemma-4-E4B-it-Q4_K_M.gguf",
              "arch": "gemma4", "n_ctx": 8192, "has_template": True, "supports_vision": True,
              "supports_audio": True, "n_gpu_layers": -1}


class FakeEngineClient(QObject):
    """EngineClient's interface, driven by the test (widget tests only)."""

    sig_host_started = Signal()
    sig_load_progress = Signal(float)
    sig_loaded = Signal(dict)
    sig_load_failed = Signal(str)
    sig_delta = Signal(int, str, str)
    sig_finished = Signal(object)
    sig_failed = Signal(int, str)
    sig_engine_crashed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model_info: dict[str, Any] | None = None
        self.generate_calls: list[tuple[list[dict[str, Any]], bool, dict[str, Any]]] = []
        self.loads: list[tuple[str, dict[str, Any]]] = []
        self.stop_calls = 0
        self.restart_calls = 0
        self.reply: Reply | None = None
        self.remote: Any = None  # the RemoteServer the chat runs on (never, in widget tests)

    @property
    def busy(self) -> bool:
        return self.reply is not None

    @property
    def model(self) -> ModelInfo | None:
        if self.model_info is None:
            return None
        known = {f.name for f in fields(ModelInfo)}
        base = {"n_ctx_train": 131072, "n_layers": 1, "size_bytes": 1, "n_gpu_layers": -1}
        return ModelInfo(**{**base, **{k: v for k, v in self.model_info.items() if k in known}})

    def load_model(self, path: str, **kwargs: Any) -> None:
        self.loads.append((path, kwargs))

    def generate(self, messages: list[dict[str, Any]], enable_thinking: bool,
                 params: dict[str, Any]) -> int:
        if self.reply is not None:
            raise RuntimeError("an answer is still being written")
        self.generate_calls.append((messages, enable_thinking, params))
        self.reply = Reply(len(self.generate_calls))
        return self.reply.id

    def stop(self, req_id: int | None = None) -> None:
        self.stop_calls += 1
        if self.reply is not None:  # like the host: the stop is confirmed by a "done" with stopped=True
            QTimer.singleShot(0, self, lambda: self.finish(stopped=True))

    def restart(self) -> None:
        self.restart_calls += 1

    def shutdown(self) -> None:
        self.reply = None

    # ---- driving ----------------------------------------------------------------------------

    def loaded(self, info: dict[str, Any] | None = None) -> None:
        self.model_info = dict(info or MODEL_INFO)
        self.sig_loaded.emit(self.model_info)

    def delta(self, kind: str, text: str) -> None:
        if self.reply is not None:
            self.reply.add(kind, text)
            self.sig_delta.emit(self.reply.id, kind, text)

    def finish(self, **overrides: Any) -> None:
        reply, self.reply = self.reply, None
        if reply is None:
            return
        reply.stats = GenerationStats(**{**STATS, **overrides})
        self.sig_finished.emit(reply)

    def fail(self, message: str) -> None:
        reply, self.reply = self.reply, None
        self.sig_failed.emit(reply.id if reply is not None else 0, message)

    def crash(self, message: str = "The engine was killed by SIGKILL while it was working. "
                                   "Your conversation is saved.\n\nggml: fatal error") -> None:
        self.reply = None
        self.model_info = None
        self.sig_engine_crashed.emit(message)


@dataclass
class PlainSettings:
    """The fields of the app's Settings the window reads (used when none is given)."""

    enable_thinking: bool = True
    system_prompt: str = ""
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64
    min_p: float = 0.0
    max_tokens: int = 2048
    theme: str = "system"
    text_scale: float = 1.0
    model_path: str = ""


def make_settings(**overrides: Any) -> Any:
    """The real Settings dataclass when it exists, with overrides."""
    try:
        from app.core.storage.settings import Settings
    except ImportError:
        return PlainSettings(**overrides)
    settings = Settings()
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def settle(rounds: int = 10) -> None:
    """Let posted layout requests run (heights of streamed text propagate over a few turns)."""
    import time

    app = QApplication.instance()
    for _ in range(rounds):
        app.processEvents()
        time.sleep(0.005)


def save(widget: QWidget, name: str, folder: Path = SCREENSHOT_DIR) -> Path:
    """Grab a widget (offscreen, real fonts) into folder/name.png."""
    folder.mkdir(parents=True, exist_ok=True)
    settle()
    path = folder / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    return path


def build_window(db_path: Path, theme_name: str) -> tuple[Any, FakeEngineClient]:
    """A MainWindow on a real HistoryStore/ChatSession with a few past conversations."""
    from app.core.chat.session import ChatSession
    from app.core.storage.history import HistoryStore
    from app.ui.main_window import MainWindow

    store = HistoryStore(db_path)
    session = ChatSession(store)
    for title, text in (("Trip to Lisbon in May", "Plan three days in Lisbon"),
                        ("Explain KV cache", "What is a KV cache?"),
                        ("Regex for dates", "A regex for ISO dates?")):
        conversation = store.create_conversation(title)
        user, answer = session.send(conversation.id, text, model="gemma-4-E4B-it-Q4_K_M")
        session.finish(answer.id, "…", "", "complete", {}, None)
    client = FakeEngineClient()
    window = MainWindow(make_settings(theme=theme_name), store, session, client)
    window.theme_manager.apply(theme=theme_name)
    window.resize(1200, 800)
    window.show()
    client.loaded()
    return window, client


def stage(window: Any, client: FakeEngineClient, state: str) -> None:
    """Bring a fresh window into one of STATES."""
    if state == "empty":
        return
    window.composer.set_text("Write a Python function that reverses a string, and explain it.")
    window.composer._send()
    widget = window.chat_view.last_assistant()
    for piece in THINKING:
        client.delta("thinking", piece)
    widget.thinking._started_at -= 4.2  # as if the model had thought for four seconds
    widget.thinking._update_header()
    if state == "streaming":
        return
    for piece in ANSWER[: 2 if state == "crashed" else len(ANSWER)]:
        client.delta("answer", piece)
    if state == "crashed":
        client.crash()
        return
    client.finish()
    window.composer.set_text("")


def main(out: Path = SCREENSHOT_DIR, themes: tuple[str, ...] = ("light", "dark"),
         states: tuple[str, ...] = STATES) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication(sys.argv)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GEMMA_DESKTOP_HOME", tmp)
        for theme_name in themes:
            for state in states:
                window, client = build_window(Path(tmp) / f"{theme_name}-{state}.db", theme_name)
                stage(window, client, state)
                written.append(save(window, f"{theme_name}-{state}", out))
                window.close()
                window.deleteLater()
                app.processEvents()
    return written


if __name__ == "__main__":
    for written_path in main():
        print(written_path)
