"""Attachment widgets: the composer's thumbnail strip and the thumbnails in the transcript.

Thumbnails are read with QImageReader at their display size (JPEGs decode scaled) and kept in a
small cache keyed by path, so re-opening a long conversation does not decode every image again.
Audio chips play through Qt Multimedia, imported only when the first clip is played: the app
starts without loading the multimedia backend.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImageReader, QPainter, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from app.core.media.durations import clock
from app.ui import theme
from app.ui.audio_player import AudioPlayer
from app.ui.image_viewer import ClickableLabel, ImageViewerDialog, open_image_viewer

COMPOSER_THUMB = 64
TRANSCRIPT_THUMB = 140
IMAGE_DETAILS = (70, 140, 280, 560, 1120)
_CACHE_SIZE = 200
_thumb_cache: OrderedDict[tuple[str, int], QPixmap] = OrderedDict()


def load_thumbnail(path: str | os.PathLike[str], side: int) -> QPixmap:
    """A pixmap of the image scaled to fit side x side (null when the file cannot be read)."""
    key = (str(path), side)
    cached = _thumb_cache.get(key)
    if cached is not None:
        _thumb_cache.move_to_end(key)
        return cached
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > side:
        reader.setScaledSize(size.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    pixmap = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
    _thumb_cache[key] = pixmap
    if len(_thumb_cache) > _CACHE_SIZE:
        _thumb_cache.popitem(last=False)
    return pixmap


def _painted_icon(kind: str, color_name: str, size: int = 16) -> QIcon:
    # No play/pause SVG ships in resources/icons; two triangles and bars are simple to paint.
    pixmap = QPixmap(size * 2, size * 2)
    pixmap.fill(Qt.GlobalColor.transparent)
    pixmap.setDevicePixelRatio(2.0)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(theme.color(color_name)))
    s = float(size)
    if kind == "play":
        painter.drawPolygon(QPolygonF([QPointF(s * 0.3, s * 0.2), QPointF(s * 0.82, s * 0.5),
                                       QPointF(s * 0.3, s * 0.8)]))
    else:
        painter.drawRoundedRect(int(s * 0.25), int(s * 0.2), int(s * 0.17), int(s * 0.6), 1, 1)
        painter.drawRoundedRect(int(s * 0.58), int(s * 0.2), int(s * 0.17), int(s * 0.6), 1, 1)
    painter.end()
    return QIcon(pixmap)



def _remove_button(parent: QWidget, object_name: str, name: str, on_click: Any) -> QToolButton:
    """The small round x that removes an attachment from the composer."""
    button = QToolButton(parent)
    button.setObjectName(object_name)
    button.setToolTip(f"Remove {name}")
    button.setAccessibleName(f"Remove {name}")
    button.setFixedSize(20, 20)
    button.setIconSize(theme.icon_size(12))
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.clicked.connect(on_click)
    return button

class ImageChip(QFrame):
    """A thumbnail; click opens the viewer; an x removes it (composer only)."""

    sig_open_requested = Signal(str)  # path
    sig_remove_requested = Signal()

    def __init__(self, path: str, name: str, side: int, removable: bool,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ImageChip")
        self.path = path
        self.name = name
        self.thumb = ClickableLabel(self)
        self.thumb.setCursor(Qt.CursorShape.PointingHandCursor)
        self.thumb.setToolTip(f"{name} — click to view larger")
        self.thumb.setAccessibleName(f"Image {name}")
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pixmap = load_thumbnail(path, side * 2)
        if not pixmap.isNull():
            pixmap = pixmap.scaled(QSize(side, side) * self.devicePixelRatioF(),
                                   Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
            pixmap.setDevicePixelRatio(self.devicePixelRatioF())
            self.thumb.setPixmap(pixmap)
            logical = pixmap.deviceIndependentSize().toSize()
            self.thumb.setFixedSize(logical)
        else:
            self.thumb.setText(name)
            self.thumb.setFixedSize(side, side)
        self.thumb.sig_clicked.connect(self._on_thumb_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.thumb)
        self.remove_button: QToolButton | None = None
        if removable:
            self.remove_button = _remove_button(self, "ChipRemove", name, self.sig_remove_requested)
        self.refresh_icons()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self.remove_button is not None:
            self.remove_button.move(self.width() - self.remove_button.width() - 2, 2)
            self.remove_button.raise_()

    def refresh_icons(self) -> None:
        if self.remove_button is not None:
            self.remove_button.setIcon(theme.icon("close", "window", 12))
            self.remove_button.setStyleSheet(
                f"QToolButton#ChipRemove {{ background: {theme.color('text')}; border: none;"
                " border-radius: 10px; }")
        self.thumb.setStyleSheet(f"border: 1px solid {theme.color('border')}; border-radius: 8px;")

    def _on_thumb_clicked(self) -> None:
        self.sig_open_requested.emit(self.path)


class AudioChip(QFrame):
    """A voice clip or audio file: play/stop, name and length; an x removes it (composer only)."""

    sig_remove_requested = Signal()

    def __init__(self, path: str, name: str, duration: float | None, removable: bool,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AudioChip")
        self.path = path
        self.name = name
        self.player = AudioPlayer(self)
        self.player.sig_state_changed.connect(self._on_player_state_changed)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 8, 4)
        row.setSpacing(6)
        self.play_button = QToolButton(self)
        self.play_button.setObjectName("ChipPlay")
        self.play_button.setToolTip(f"Play {name}")
        self.play_button.setAccessibleName(f"Play {name}")
        self.play_button.setFixedSize(26, 26)
        self.play_button.setIconSize(theme.icon_size(14))
        self.play_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.play_button.clicked.connect(self._on_play_button_clicked)
        row.addWidget(self.play_button)
        text = name if duration is None else f"{name} · {clock(duration)}"
        self.label = QLabel(text, self)
        self.label.setObjectName("AudioChipText")
        row.addWidget(self.label)
        self.remove_button: QToolButton | None = None
        if removable:
            self.remove_button = _remove_button(self, "ChipRemoveInline", name,
                                                self.sig_remove_requested)
            row.addWidget(self.remove_button)
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.refresh_icons()

    @property
    def playing(self) -> bool:
        return self.player.playing

    def refresh_icons(self) -> None:
        self._update_play_icon()
        self.play_button.setStyleSheet(
            f"QToolButton#ChipPlay {{ background: {theme.color('accent')}; border: none;"
            " border-radius: 13px; }")
        if self.remove_button is not None:
            self.remove_button.setIcon(theme.icon("close", "text_muted", 12))
            self.remove_button.setStyleSheet("QToolButton { background: transparent; border: none; }")
        self.setStyleSheet(
            f"QFrame#AudioChip {{ background: {theme.color('surface')};"
            f" border: 1px solid {theme.color('border')}; border-radius: 17px; }}"
            f" QLabel#AudioChipText {{ color: {theme.color('text')}; }}")

    def _update_play_icon(self) -> None:
        self.play_button.setIcon(_painted_icon("pause" if self.playing else "play", "accent_text", 14))

    def _on_play_button_clicked(self) -> None:
        self.player.toggle(self.path)

    def _on_player_state_changed(self, playing: bool) -> None:
        self._update_play_icon()
        self.play_button.setToolTip(f"Stop {self.name}" if playing else f"Play {self.name}")


class AttachmentStrip(QWidget):
    """The composer's row of attachments (and placeholders for files still being read)."""

    sig_remove_requested = Signal(str)  # sha256 of the attachment
    sig_open_requested = Signal(str)  # image path
    sig_detail_changed = Signal(int)  # image token budget

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AttachmentStrip")
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 2, 0, 4)
        self._row.setSpacing(8)
        self._row.addStretch(1)
        self.detail = QComboBox(self)
        self.detail.setObjectName("ImageDetail")
        self.detail.setAccessibleName("Image detail")
        self.detail.setToolTip("Image detail: more tokens see finer detail but take longer to read")
        for budget in IMAGE_DETAILS:
            self.detail.addItem(f"Detail {budget}", budget)
        self.detail.currentIndexChanged.connect(self._on_detail_index_changed)
        self._row.addWidget(self.detail, 0, Qt.AlignmentFlag.AlignBottom)
        self._chips: dict[str, QWidget] = {}
        self._placeholders: dict[int, QLabel] = {}
        self._update_visibility()

    # ---- public -----------------------------------------------------------------------------

    def order(self) -> list[str]:
        """Attachment keys in the order shown (the order they were dropped or picked)."""
        return [key for key, _ in sorted(self._chips.items(),
                                         key=lambda kv: self._row.indexOf(kv[1]))]

    def chip(self, key: str) -> QWidget | None:
        return self._chips.get(key)

    def chips(self) -> list[QWidget]:
        return [self._chips[key] for key in self.order()]

    def set_detail(self, budget: int) -> None:
        index = self.detail.findData(budget)
        self.detail.blockSignals(True)
        self.detail.setCurrentIndex(index if index >= 0 else self.detail.findData(280))
        self.detail.blockSignals(False)

    def add_placeholder(self, job: int, name: str) -> None:
        label = QLabel(f"Reading {name}…", self)
        label.setObjectName("AttachmentPlaceholder")
        label.setStyleSheet(f"color: {theme.color('text_muted')};")
        self._row.insertWidget(self._row.count() - 2, label)
        self._placeholders[job] = label
        self._update_visibility()

    def remove_placeholder(self, job: int) -> None:
        label = self._placeholders.pop(job, None)
        if label is not None:
            self._row.removeWidget(label)
            label.deleteLater()
        self._update_visibility()

    def add_attachment(self, attachment: Any, duration: float | None = None,
                       job: int | None = None) -> None:
        """Show an attachment; with `job`, in the place of that file's placeholder (drop order)."""
        key = str(attachment.sha256)
        placeholder = self._placeholders.get(job) if job is not None else None
        if key in self._chips:
            return
        chip: QWidget
        if attachment.kind == "image":
            image = ImageChip(str(attachment.path), attachment.name, COMPOSER_THUMB, True, self)
            image.sig_open_requested.connect(self.sig_open_requested)
            image.sig_remove_requested.connect(lambda k=key: self.sig_remove_requested.emit(k))
            chip = image
        else:
            audio = AudioChip(str(attachment.path), attachment.name, duration, True, self)
            audio.sig_remove_requested.connect(lambda k=key: self.sig_remove_requested.emit(k))
            chip = audio
        at = self._row.indexOf(placeholder) if placeholder is not None else self._row.count() - 2
        self._row.insertWidget(at, chip, 0, Qt.AlignmentFlag.AlignBottom)
        self._chips[key] = chip
        self._update_visibility()

    def remove_attachment(self, key: str) -> None:
        chip = self._chips.pop(key, None)
        if chip is not None:
            if isinstance(chip, AudioChip):
                chip.player.stop()
            self._row.removeWidget(chip)
            chip.deleteLater()
        self._update_visibility()

    def clear(self) -> None:
        for key in list(self._chips):
            self.remove_attachment(key)

    def refresh_icons(self) -> None:
        for chip in self._chips.values():
            chip.refresh_icons()  # type: ignore[attr-defined]

    # ---- internals --------------------------------------------------------------------------

    def _update_visibility(self) -> None:
        has_image = any(isinstance(c, ImageChip) for c in self._chips.values())
        self.detail.setVisible(has_image)
        self.setVisible(bool(self._chips or self._placeholders))

    def _on_detail_index_changed(self, _index: int) -> None:
        self.sig_detail_changed.emit(int(self.detail.currentData()))


class MessageAttachmentsView(QWidget):
    """Attachments of a sent message in the transcript: thumbnails (click: larger view) and audio chips."""

    def __init__(self, attachments: Sequence[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageAttachments")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addStretch(1)
        self.chips: list[QWidget] = []
        for attachment in attachments:
            chip: QWidget
            if attachment.kind == "image":
                image = ImageChip(str(attachment.path), attachment.name, TRANSCRIPT_THUMB, False, self)
                image.sig_open_requested.connect(self._on_chip_open_requested)
                chip = image
            else:
                chip = AudioChip(str(attachment.path), attachment.name, _wav_seconds(attachment.path),
                                 False, self)
            layout.addWidget(chip, 0, Qt.AlignmentFlag.AlignBottom)
            self.chips.append(chip)
        self.viewer: ImageViewerDialog | None = None

    def refresh_icons(self) -> None:
        for chip in self.chips:
            chip.refresh_icons()  # type: ignore[attr-defined]

    def _on_chip_open_requested(self, path: str) -> None:
        self.viewer = open_image_viewer(path, self)


def _wav_seconds(path: Any) -> float | None:
    # Stored clips are small WAVs: the header gives the length without reading the samples.
    try:
        import soundfile

        info = soundfile.info(str(path))
        return float(info.frames) / float(info.samplerate) if info.samplerate else None
    except (OSError, RuntimeError):  # a missing or odd file just shows no length
        return None


__all__ = ["AttachmentStrip", "AudioChip", "AudioPlayer", "ImageChip", "ImageViewerDialog",
           "MessageAttachmentsView", "load_thumbnail", "open_image_viewer"]
