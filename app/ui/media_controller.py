"""Images and voice for the window: drop, paste or pick files; record; route clips; detail setting.

Files become attachments on worker threads (decode, check, scale, hash, store: a big photo takes
a noticeable fraction of a second, which the GUI thread must never spend). The composer shows a
placeholder while a file is read, then its thumbnail or audio chip. Recorded clips go in as audio
when the model hears audio, or are transcribed by a local E2B/E4B and put into the composer as
text when it does not (26B-A4B, 31B).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.storage.records import Attachment
from app.services.recorder import MicrophoneRecorder
from app.services.transcriber import NO_TRANSCRIBER_MESSAGE, LocalTranscriber
from app.ui.attachments import AttachmentStrip, open_image_viewer
from app.ui.media_formats import AUDIO_EXTENSIONS, PICK_FILTER, RAW_IMAGE_FORMATS, attachable
from app.ui.media_import import ImportJob, JobSignals
from app.ui.voice import RecordingBar, VoiceController

log = logging.getLogger(__name__)

ERROR_TITLE = "Couldn\u2019t attach a file"


class MediaController(QObject):
    """Attachments in the composer, drop/paste/pick, the microphone, and the model's capabilities."""

    sig_get_projector_requested = Signal()  # open the model manager on the projector download
    sig_get_audio_model_requested = Signal()  # open the model manager on Gemma 4 E2B
    sig_attachments_changed = Signal(int)
    sig_settings_changed = Signal()  # settings.image_detail edited in place

    def __init__(self, settings: Any, client: Any, composer: Any, banner: Any, status: Any,
                 window: QWidget, recorder: Any = None, transcriber: Any = None) -> None:
        super().__init__(window)
        self._settings, self._client = settings, client
        self._composer, self._banner, self._status, self._window = composer, banner, status, window
        self._attachments: dict[str, Attachment] = {}
        self._jobs: dict[int, JobSignals] = {}
        self._job_ids = itertools.count(1)
        self._errors: list[str] = []
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._pool.setExpiryTimeout(500)  # idle readers end soon: no thread lingers between drops
        self.viewer: Any = None

        layout = composer.frame.layout()
        self.strip = AttachmentStrip(composer.frame)
        self.strip.set_detail(int(settings.image_detail or 280))
        layout.insertWidget(0, self.strip)
        self.recording_bar = RecordingBar(composer.frame)
        layout.insertWidget(layout.indexOf(composer.input) + 1, self.recording_bar)
        self.strip.sig_remove_requested.connect(self.remove)
        self.strip.sig_open_requested.connect(self._on_strip_open_requested)
        self.strip.sig_detail_changed.connect(self._on_strip_detail_changed)

        self.recorder = recorder if recorder is not None else MicrophoneRecorder(self)
        self.voice = VoiceController(self.recorder, composer.mic_button, self.recording_bar,
                                     settings, window, self)
        self.voice.sig_clip_ready.connect(self._on_voice_clip_ready)
        self.voice.sig_message.connect(self._on_voice_message)
        self.voice.sig_blocked.connect(self._on_voice_blocked)
        self.transcriber = transcriber if transcriber is not None else LocalTranscriber(self)
        self.transcriber.sig_progress.connect(status.set_message)
        self.transcriber.sig_finished.connect(self._on_transcriber_finished)
        self.transcriber.sig_failed.connect(self._on_transcriber_failed)
        composer.sig_mic_requested.connect(self.voice.on_button_clicked)
        composer.sig_attach_image_requested.connect(self._on_composer_attach_requested)
        banner.sig_action_clicked.connect(self._on_banner_action_clicked)
        client.sig_loaded.connect(self._on_client_loaded)

        window.setAcceptDrops(True)
        window.installEventFilter(self)
        composer.input.viewport().installEventFilter(self)
        composer.input.installEventFilter(self)
        self._refresh_capabilities()

    # ---- public -----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Files are still being read."""
        return bool(self._jobs)

    def attachments(self) -> list[Attachment]:
        """In the order the composer shows them."""
        return [self._attachments[k] for k in self.strip.order() if k in self._attachments]

    def ready_to_send(self) -> bool:
        """False (with a status message) while files are still read or the microphone records."""
        if self.voice.recording:
            self._status.set_message("Finish the recording first (click the microphone), or press Esc.")
            return False
        if self._jobs:
            self._status.set_message("Still reading the attached files \u2014 send again in a moment.")
            return False
        return True

    def clear(self) -> None:
        """After a send: the composer starts empty."""
        self._attachments.clear()
        self.strip.clear()
        self._changed()

    def remove(self, key: str) -> None:
        self._attachments.pop(key, None)
        self.strip.remove_attachment(key)
        self._changed()

    def add_paths(self, paths: Sequence[str | Path]) -> None:
        for path in paths:
            p = Path(path)
            kind = "audio" if p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS else "image"
            if kind == "image" and not self._vision_ok():
                return
            self._start_job(p, p.name, kind)

    def add_image_data(self, data: bytes | QImage, name: str = "Pasted image") -> None:
        if self._vision_ok():
            self._start_job(data, name, "image")

    def add_audio_clip(self, path: str, seconds: float) -> None:
        """A recording already stored by the recorder (named by its sha256)."""
        p = Path(path)
        attachment = Attachment("audio", p, p.stem, "Voice message", "audio/wav")
        self._attach(attachment, seconds)

    def add_mime(self, mime: QMimeData) -> bool:
        """Attach what a drop or paste carries; False when it carries nothing attachable."""
        files = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
        if files:
            self.add_paths([f for f in files if f])
            return True
        for fmt in RAW_IMAGE_FORMATS:
            if mime.hasFormat(fmt):
                self.add_image_data(bytes(mime.data(fmt).data()), "Pasted image")
                return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.add_image_data(image, "Pasted image")
                return True
        if mime.hasUrls() and mime.urls():
            self._report("Only files on this computer can be attached \u2014 save the image first, "
                         "then drop the file.")
            return True
        return False

    def pick_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self._window, "Attach images or audio", "", PICK_FILTER)
        if paths:
            self.add_paths(paths)

    def cancel_recording(self) -> bool:
        return self.voice.cancel()

    def shutdown(self) -> None:
        """Before the window goes: stop recording, end the transcriber host, join the readers."""
        self.voice.cancel()
        self.transcriber.shutdown()
        self._pool.waitForDone(10_000)

    # ---- drop and paste ---------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            mime = event.mimeData()  # type: ignore[attr-defined]
            if attachable(mime):
                event.setDropAction(Qt.DropAction.CopyAction)  # type: ignore[attr-defined]
                event.accept()
                return True
        elif kind == QEvent.Type.Drop:
            mime = event.mimeData()  # type: ignore[attr-defined]
            if attachable(mime):
                event.setDropAction(Qt.DropAction.CopyAction)  # type: ignore[attr-defined]
                event.accept()
                self._new_batch()
                self.add_mime(mime)
                return True
        elif kind == QEvent.Type.KeyPress and watched is self._composer.input:
            assert isinstance(event, QKeyEvent)
            if event.matches(QKeySequence.StandardKey.Paste):
                mime = QGuiApplication.clipboard().mimeData()
                if mime is not None and attachable(mime):
                    self._new_batch()
                    return self.add_mime(mime)
            elif event.key() == Qt.Key.Key_Escape and self.voice.recording:
                self.voice.cancel()
                return True
        return False

    # ---- internals --------------------------------------------------------------------------

    def _start_job(self, source: Path | bytes | QImage, name: str, kind: str) -> None:
        job = next(self._job_ids)
        signals = JobSignals()
        signals.sig_finished.connect(self._on_job_finished)
        signals.sig_failed.connect(self._on_job_failed)
        self._jobs[job] = signals
        self.strip.add_placeholder(job, name)
        self._pool.start(ImportJob(job, signals, source, name, kind))

    def _on_job_finished(self, job: int, attachment: Attachment, duration: float | None) -> None:
        if attachment.kind == "audio" and not self._audio_native():
            self._end_job(job)
            self._transcribe(str(attachment.path))
            return
        self._attach(attachment, duration, job)
        self._end_job(job)

    def _on_job_failed(self, job: int, message: str) -> None:
        self._end_job(job)
        self._report(message)

    def _end_job(self, job: int) -> None:
        signals = self._jobs.pop(job, None)
        if signals is not None:
            signals.deleteLater()
        self.strip.remove_placeholder(job)

    def _attach(self, attachment: Attachment, duration: float | None, job: int | None = None) -> None:
        self._attachments[attachment.sha256] = attachment
        self.strip.add_attachment(attachment, duration, job)
        self._changed()

    def _changed(self) -> None:
        count = len(self._attachments)
        set_has = getattr(self._composer, "set_has_attachments", None)
        if callable(set_has):
            set_has(count > 0)
        self.sig_attachments_changed.emit(count)

    def _new_batch(self) -> None:
        if not self._jobs:
            self._errors = []

    def _report(self, message: str) -> None:
        if message not in self._errors:
            self._errors.append(message)
        self._banner.show_notice(ERROR_TITLE, " ".join(self._errors[-3:]))
        self._status.set_message(message)

    # ---- what the model can take ------------------------------------------------------------

    def _info(self) -> dict[str, Any] | None:
        info = self._client.model_info
        return info if isinstance(info, dict) else None

    def _vision_ok(self) -> bool:
        info = self._info()
        if info is None or info.get("supports_vision", True):
            return True
        self._show_projector_notice()
        return False

    def _audio_native(self) -> bool:
        info = self._info()
        return info is None or bool(info.get("supports_audio", False))

    def _refresh_capabilities(self) -> None:
        info = self._info()
        button = self._composer.attach_button
        if info is not None and not info.get("supports_vision", True):
            button.setToolTip("This model was loaded without its projector and cannot see images "
                              "\u2014 click to see what to download")
        else:
            button.setToolTip("Attach images or audio (or drop / paste them here)")
        if info is not None and not info.get("supports_audio", False) \
                and self.transcriber.available() is None:
            self.voice.set_blocked(NO_TRANSCRIBER_MESSAGE)
        else:
            self.voice.set_blocked("")

    def _projector_text(self) -> str:
        info = self._info() or {}
        path = str(info.get("path") or "")
        try:
            from app.core.catalog.catalog import load_catalog

            entry = load_catalog().find_by_filename(Path(path).name) if path else None
        except (OSError, ValueError, KeyError):  # no catalog: the general sentence still helps
            entry = None
        if entry is not None and entry.mmproj is not None:
            size = entry.mmproj.size / 1e9
            return (f"{entry.variant.label} sees images only with its projector file "
                    f"{entry.mmproj.filename} ({size:.1f} GB). Get it in the model manager; the "
                    "model then reloads with it.")
        return ("This model was loaded without its projector (mmproj) file, so it cannot see images. "
                "Download the model's projector in the model manager, or open the model again with it.")

    def _show_projector_notice(self) -> None:
        self._banner.show_notice("Images need the projector", self._projector_text(), "Get it",
                                 "get_projector")

    # ---- reactions --------------------------------------------------------------------------

    def _on_client_loaded(self, _info: dict[str, Any]) -> None:
        self._refresh_capabilities()

    def _on_composer_attach_requested(self) -> None:
        info = self._info()
        if info is not None and not info.get("supports_vision", True) and not info.get("supports_audio"):
            self._show_projector_notice()
            return
        self._new_batch()
        self.pick_files()

    def _on_banner_action_clicked(self, key: str) -> None:
        if key == "get_projector":
            self._banner.dismiss()
            self.sig_get_projector_requested.emit()
        elif key == "get_audio_model":
            self._banner.dismiss()
            self.sig_get_audio_model_requested.emit()

    def _on_strip_open_requested(self, path: str) -> None:
        self.viewer = open_image_viewer(path, self._window)

    def _on_strip_detail_changed(self, budget: int) -> None:
        self._settings.image_detail = budget
        self.sig_settings_changed.emit()

    def _on_voice_clip_ready(self, path: str, seconds: float) -> None:
        if self._audio_native():
            self.add_audio_clip(path, seconds)
        else:
            self._transcribe(path)

    def _transcribe(self, path: str) -> None:
        self._composer.mic_button.setEnabled(False)
        if not self.transcriber.transcribe(path):
            self._composer.mic_button.setEnabled(True)

    def _on_voice_message(self, message: str) -> None:
        self._banner.show_notice("Nothing recorded", message if message.endswith(".") else message + ".")
        self._status.set_message(message)

    def _on_voice_blocked(self) -> None:
        self._refresh_capabilities()
        if self.voice.blocked_reason:
            self._banner.show_notice("Voice needs Gemma 4 E2B or E4B", NO_TRANSCRIBER_MESSAGE, "Get it",
                                     "get_audio_model")
        else:
            self.voice.start()

    def _on_transcriber_finished(self, text: str) -> None:
        self._composer.mic_button.setEnabled(True)
        if not text:
            self._status.set_message("Nothing could be made out in the recording \u2014 try again, "
                                     "closer to the microphone.")
            return
        current = self._composer.text().rstrip()
        self._composer.set_text(f"{current} {text}" if current else text)
        self._composer.focus_input()
        self._status.set_message("Transcribed on this computer \u2014 check the text, then send it.")

    def _on_transcriber_failed(self, message: str) -> None:
        self._composer.mic_button.setEnabled(True)
        self._report(message)
