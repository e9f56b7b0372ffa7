"""The status bar: model name and load progress on the left; API server, speed, first token and
context on the right."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QStatusBar, QToolButton, QWidget


class ChatStatusBar(QStatusBar):
    """Model name · load progress · API server · tokens/s · time to first token · context used."""

    sig_api_clicked = Signal()  # the API item: open the Server settings

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.model_label = QLabel("No model loaded", self)
        self.model_label.setAccessibleName("Model")
        self.addWidget(self.model_label)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("LoadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.addWidget(self.progress)
        self.message_label = QLabel(self)
        # A long notice must not squeeze the stats on the right: it gets whatever room is left.
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.addWidget(self.message_label, 1)

        self.api_button = QToolButton(self)
        self.api_button.setObjectName("ApiStatus")
        self.api_button.setAutoRaise(True)
        self.api_button.setToolTip("The API server: other programs use the loaded model here. "
                                   "Click for its settings.")
        self.api_button.setAccessibleName("API server")
        self.api_button.setVisible(False)
        self.api_button.clicked.connect(self.sig_api_clicked)
        self.addPermanentWidget(self.api_button)

        self.speed_label = QLabel(self)
        self.speed_label.setToolTip("Decode speed of the last answer")
        self.ttft_label = QLabel(self)
        self.ttft_label.setToolTip("Time to first token of the last answer")
        self.context_label = QLabel(self)
        self.context_label.setToolTip("Context used / context size, in tokens")
        for label in (self.speed_label, self.ttft_label, self.context_label):
            self.addPermanentWidget(label)
        self.clear_stats()

    def set_model(self, name: str, n_ctx: int | None = None) -> None:
        self.model_label.setText(name or "No model loaded")
        self.progress.setVisible(False)
        if n_ctx:
            self.context_label.setText(f"Context 0 / {n_ctx:,}")

    def set_loading(self, name: str, fraction: float | None = None) -> None:
        self.model_label.setText(f"Loading {name}…" if name else "Loading…")
        self.progress.setVisible(True)
        if fraction is None:
            self.progress.setRange(0, 0)  # busy indicator until the engine reports progress
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))

    def set_api(self, url: str | None, requests: int = 0, chat_waiting: bool = False) -> None:
        """The API server's address and live requests; hidden while it is off (url None)."""
        if url is None:
            self.api_button.setVisible(False)
            return
        parts = [f"API {url.removesuffix('/v1')}"]
        if requests:
            parts.append(f"{requests} request" + ("s" if requests != 1 else ""))
        if chat_waiting:
            parts.append("chat waits its turn")
        self.api_button.setText(" · ".join(parts))
        self.api_button.setVisible(True)

    def set_message(self, text: str) -> None:
        self.message_label.setText(text)

    def clear_stats(self) -> None:
        self.speed_label.setText("")
        self.ttft_label.setText("")

    def set_stats(self, stats: dict[str, Any]) -> None:
        speed = stats.get("decode_tok_s")
        ttft = stats.get("ttft_ms")
        n_past, n_ctx = stats.get("n_past"), stats.get("n_ctx")
        self.speed_label.setText(f"{speed:.1f} tok/s" if isinstance(speed, int | float) else "")
        if isinstance(ttft, int | float):
            self.ttft_label.setText(f"First token {ttft / 1000:.2f} s" if ttft >= 1000
                                    else f"First token {ttft:.0f} ms")
        else:
            self.ttft_label.setText("")
        if isinstance(n_past, int) and isinstance(n_ctx, int) and n_ctx:
            self.context_label.setText(f"Context {n_past:,} / {n_ctx:,}")
