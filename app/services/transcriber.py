"""Local speech-to-text for models without audio input (26B-A4B, 31B).

An installed E2B/E4B with its projector runs in a second engine host, on the CPU so it never
competes with the chat model for GPU memory, and is asked to transcribe the clip (temperature
0). The host stays loaded for a couple of minutes after the last clip (people often record
several in a row) and is then ended, giving its memory back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.download.store import is_projector
from app.core.engine.records import Reply

log = logging.getLogger(__name__)

TRANSCRIBE_PROMPT = "Transcribe this audio exactly."
IDLE_SHUTDOWN_MS = 120_000
AUDIO_VARIANTS = ("E2B", "E4B")  # smallest first: fastest on a CPU
NO_TRANSCRIBER_MESSAGE = (
    "This model cannot hear audio, and no Gemma 4 E2B or E4B is installed to turn speech into "
    "text \u2014 download Gemma 4 E2B (with its projector) in the model manager to use the "
    "microphone with this model."
)


@dataclass(frozen=True)
class TranscriptionModel:
    """An installed audio-capable model and its projector."""

    model_path: str
    mmproj_path: str
    label: str


def find_transcription_model(installed: Iterable[Any], catalog: Any) -> TranscriptionModel | None:
    """The smallest installed E-series model that has its projector installed too, or None."""
    entries = list(installed)
    projectors = [m for m in entries if is_projector(m.filename)]
    best: tuple[int, TranscriptionModel] | None = None
    for m in entries:
        if m in projectors:
            continue
        entry = catalog.find_by_filename(m.filename)
        variant = entry.variant if entry is not None else None
        if variant is None or "audio" not in variant.inputs:
            continue
        mmproj = _projector_for(m, variant.id, projectors)
        if mmproj is None:
            continue
        candidate = (int(variant.rank), TranscriptionModel(m.path, mmproj.path, variant.label))
        if best is None or candidate[0] < best[0]:
            best = candidate
    return best[1] if best else None


def _projector_for(model: Any, variant_id: str, projectors: list[Any]) -> Any:
    tag = f"-{variant_id.lower()}-"
    same_repo = [p for p in projectors if p.repo_id == model.repo_id]
    named = [p for p in projectors if tag in Path(p.filename).name.lower()]
    for group in ([p for p in same_repo if p in named], named, same_repo if len(same_repo) == 1 else []):
        if group:
            return group[0]
    return None


def installed_transcription_model() -> TranscriptionModel | None:
    """Look in the models folder (the store's manifest) and the catalog."""
    try:
        from app.core.catalog.catalog import load_catalog
        from app.core.download.store import ModelStore

        return find_transcription_model(ModelStore().installed(), load_catalog())
    except (OSError, ValueError, KeyError):  # an unreadable manifest or catalog: none installed
        log.exception("could not list installed models")
        return None


class LocalTranscriber(QObject):
    """Transcribes one clip at a time in its own engine host; the text comes back as a signal."""

    sig_progress = Signal(str)  # what is happening, for the status bar
    sig_finished = Signal(str)  # the text
    sig_failed = Signal(str)  # plain words

    def __init__(self, parent: QObject | None = None, *,
                 client_factory: Callable[[], Any] | None = None,
                 finder: Callable[[], TranscriptionModel | None] = installed_transcription_model) -> None:
        super().__init__(parent)
        self._client_factory = client_factory
        self._finder = finder
        self._client: Any = None
        self._loaded: TranscriptionModel | None = None
        self._pending: str | None = None
        self._model: TranscriptionModel | None = None
        self.last_stats: dict[str, Any] = {}
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(IDLE_SHUTDOWN_MS)
        self._idle.timeout.connect(self.shutdown)

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def available(self) -> TranscriptionModel | None:
        return self._finder()

    def transcribe(self, wav_path: str) -> bool:
        """Start; False (and sig_failed) when no E-series model is installed or one is running."""
        if self._pending is not None:
            self.sig_failed.emit("A recording is still being transcribed \u2014 wait a moment.")
            return False
        model = self._finder()
        if model is None:
            self.sig_failed.emit(NO_TRANSCRIBER_MESSAGE)
            return False
        self._idle.stop()
        self._pending = wav_path
        self._model = model
        if self._client is not None and self._loaded == model and self._client.model_info:
            self._generate()
            return True
        self.shutdown_host()
        self._client = self._make_client()
        self.sig_progress.emit(f"Loading {model.label} to transcribe the recording\u2026")
        self._client.load_model(model.model_path, mmproj=model.mmproj_path, n_ctx=2048, n_gpu_layers=0)
        return True

    def shutdown_host(self) -> None:
        client, self._client, self._loaded = self._client, None, None
        if client is not None:
            for signal, slot in self._connections(client):
                signal.disconnect(slot)
            client.shutdown()

    def shutdown(self) -> None:
        """End the host (idle timeout, or the app quitting); a running transcription is dropped."""
        self._idle.stop()
        self._pending = None
        self.shutdown_host()

    # ---- internals --------------------------------------------------------------------------

    def _make_client(self) -> Any:
        if self._client_factory is not None:
            client = self._client_factory()
        else:
            from app.services.engine_client import EngineClient

            client = EngineClient(self)
        for signal, slot in self._connections(client):
            signal.connect(slot)
        return client

    def _connections(self, client: Any) -> list[tuple[Any, Any]]:
        return [(client.sig_loaded, self._on_client_loaded),
                (client.sig_load_failed, self._on_client_failed),
                (client.sig_failed, self._on_client_generation_failed),
                (client.sig_finished, self._on_client_finished),
                (client.sig_engine_crashed, self._on_client_crashed)]

    def _generate(self) -> None:
        assert self._pending is not None and self._client is not None
        self.sig_progress.emit("Transcribing the recording\u2026")
        messages = [{"role": "user", "content": [
            {"type": "audio", "path": self._pending},
            {"type": "text", "text": TRANSCRIBE_PROMPT},
        ]}]
        try:
            self._client.generate(messages, False, {"temperature": 0.0, "max_tokens": 400})
        except Exception as exc:  # noqa: BLE001 - a host that died between clips
            log.exception("transcription did not start")
            self._fail(f"The transcription could not start ({exc}) \u2014 try again.")

    def _on_client_loaded(self, _info: dict[str, Any]) -> None:
        self._loaded = self._model
        if self._pending is not None:
            self._generate()

    def _on_client_finished(self, reply: Reply) -> None:
        if self._pending is None:
            return
        self._pending = None
        self.last_stats = asdict(reply.stats) if reply.stats is not None else {}
        text = reply.answer.strip()
        self._idle.start()
        self.sig_finished.emit(text)

    def _on_client_generation_failed(self, _request_id: int, message: str) -> None:
        self._on_client_failed(message)

    def _on_client_failed(self, message: str) -> None:
        self._fail(f"The recording could not be transcribed: {message}")

    def _on_client_crashed(self, _details: str) -> None:
        self._fail("The transcription engine stopped unexpectedly \u2014 try recording again.")

    def _fail(self, message: str) -> None:
        self._pending = None
        self.shutdown_host()
        self.sig_failed.emit(message)
