"""The image viewer: an attached image at up to the screen's size; Esc or a click closes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImageReader, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)


class ClickableLabel(QLabel):
    sig_clicked = Signal()

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.sig_clicked.emit()
        super().mouseReleaseEvent(event)


class ImageViewerDialog(QDialog):
    """The image at up to the screen's size; Esc or a click closes it."""

    def __init__(self, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.setWindowTitle(Path(path).name)
        self.setObjectName("ImageViewer")
        self.setModal(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        image = reader.read()
        self.image_label = ClickableLabel(self)
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setAccessibleName("Image")
        self.image_label.sig_clicked.connect(self.accept)
        screen = self.screen().availableGeometry().size() if self.screen() else QSize(1280, 800)
        limit = QSize(int(screen.width() * 0.85), int(screen.height() * 0.85))
        if image.isNull():
            self.image_label.setText("This image can no longer be read from the data folder.")
        else:
            pixmap = QPixmap.fromImage(image)
            if pixmap.width() > limit.width() or pixmap.height() > limit.height():
                pixmap = pixmap.scaled(limit, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            self.image_label.setPixmap(pixmap)
        scroll = QScrollArea(self)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.image_label)
        scroll.setWidgetResizable(True)
        layout.addWidget(scroll)
        self.caption = caption = QLabel(f"{Path(path).name} · {image.width()}×{image.height()}" if not image.isNull()
                         else Path(path).name, self)
        caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(caption)
        hint = self.image_label.pixmap().size() if not image.isNull() else QSize(320, 120)
        self.resize(min(limit.width(), hint.width() + 40), min(limit.height(), hint.height() + 70))


def open_image_viewer(path: str, parent: QWidget | None = None) -> ImageViewerDialog:
    """Show the viewer without blocking (tests and the event loop keep running)."""
    dialog = ImageViewerDialog(path, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
