"""Attaching one file or pasted image off the GUI thread: read, check, store (sha256 name), describe.

These run on the media controller's small thread pool (two at a time), not one thread per file:
dropping twenty photos must not decode twenty at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QObject, QRunnable, Signal
from PySide6.QtGui import QImage

from app.core.storage.records import Attachment

log = logging.getLogger(__name__)


class JobSignals(QObject):
    sig_progress = Signal(int, str)  # job, what is being done
    sig_finished = Signal(int, object, object)  # job, Attachment, duration (seconds or None)
    sig_failed = Signal(int, str)  # job, message naming the file


class ImportJob(QRunnable):
    """Read one file or pasted image, check it, store it (sha256 name) and describe it."""

    def __init__(self, job: int, signals: JobSignals, source: Path | bytes | QImage, name: str,
                 kind: str) -> None:
        super().__init__()
        self.job, self.signals, self.source, self.name, self.kind = job, signals, source, name, kind

    def run(self) -> None:
        try:
            self.signals.sig_progress.emit(self.job, self.name)
            if self.kind == "audio":
                attachment, duration = self._audio()
            else:
                attachment, duration = self._image(), None
            self.signals.sig_finished.emit(self.job, attachment, duration)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user, none vanishes
            message = getattr(exc, "user_message", None)
            if not message:
                log.exception("attaching %s failed", self.name)
                message = f"\u201c{self.name}\u201d could not be attached ({exc}) \u2014 try another file."
            self.signals.sig_failed.emit(self.job, message)

    def _image(self) -> Attachment:
        from app.core.media.images import load_image

        source = self.source
        if isinstance(source, QImage):
            buffer = QBuffer()  # QImage is reentrant: encoding here keeps the GUI thread free
            buffer.open(QIODevice.OpenModeFlag.WriteOnly)
            source.save(buffer, "PNG")  # type: ignore[call-overload]  # str works at runtime
            source = bytes(buffer.data().data())
        image = load_image(source, name=self.name)
        path = image.store()
        mime = "image/jpeg" if image.ext == "jpg" else "image/png"
        return Attachment("image", path, image.sha256, self.name, mime)

    def _audio(self) -> tuple[Attachment, float]:
        from app.core.media.audio import load_audio
        from app.core.media.store import sha256_hex, store_attachment

        assert isinstance(self.source, Path | bytes)
        clip = load_audio(self.source, name=self.name)
        data = clip.wav_bytes()
        path = store_attachment(data, "wav")
        return Attachment("audio", path, sha256_hex(data), self.name, "audio/wav"), clip.duration_s
