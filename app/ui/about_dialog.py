"""The About box: name, version, the bundled components with their licenses, and the app's folders."""

from __future__ import annotations

import html
import sys
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, qVersion
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app import APP_NAME, __version__
from app.core import paths
from app.ui import theme

# (component, license, why it is here / the notice the license asks for)
LICENSES: tuple[tuple[str, str, str], ...] = (
    ("Qt 6", "GNU LGPL v3",
     "The Qt libraries ship unmodified as separate shared libraries in the app folder "
     "(_internal/PySide6/Qt/lib); you may replace them with your own build of the same Qt "
     "version. Qt's source code: https://download.qt.io/official_releases/qt/ . "
     "Qt is a trademark of The Qt Company Ltd."),
    ("PySide6 / Shiboken6", "GNU LGPL v3",
     "The Python bindings for Qt, shipped unmodified as shared libraries. Source: "
     "https://code.qt.io/cgit/pyside/pyside-setup.git/ ."),
    ("llama.cpp and ggml", "MIT",
     "Copyright (c) 2023-2026 The ggml authors. Runs the models on your CPU or GPU."),
    ("llama-cpp-python", "MIT", "Copyright (c) 2023 Andrei Betlen. Python bindings for llama.cpp."),
    ("Gemma 4 models", "Apache 2.0",
     "The model files are not part of this app: you download or import them. Gemma 4 is "
     "released by Google under the Apache License 2.0; Gemma is a trademark of Google LLC."),
    ("Python", "PSF License", "The Python runtime inside the app."),
    ("huggingface_hub", "Apache 2.0", "Downloads models from Hugging Face."),
    ("NumPy", "BSD 3-Clause", "Audio and image arrays."),
    ("Pillow", "MIT-CMU (HPND)", "Reads and scales images."),
    ("soundfile / libsndfile", "BSD 3-Clause / GNU LGPL v2.1", "Reads and writes audio clips."),
    ("Jinja2 / MarkupSafe", "BSD 3-Clause", "Renders each model's own chat template."),
    ("platformdirs", "MIT", "Finds the standard folders for settings and data."),
)


def _version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "bundled"


def component_versions() -> list[tuple[str, str]]:
    """What the app runs on, for bug reports (llama.cpp is read from metadata, not imported)."""
    return [
        ("Qt", qVersion()),
        ("PySide6", _version_of("PySide6")),
        ("llama-cpp-python", _version_of("llama_cpp_python")),
        ("Python", sys.version.split()[0]),
    ]


def folder_paths() -> list[tuple[str, Path]]:
    """The folders the app reads and writes, as shown in the About box."""
    return [
        ("Settings", paths.config_dir()),
        ("Chats", paths.data_dir()),
        ("Models", paths.models_dir()),
        ("Cache", paths.cache_dir()),
        ("Logs", paths.log_dir()),
    ]


def licenses_html() -> str:
    """The components and their licenses as simple HTML."""
    rows = "".join(
        f"<p><b>{html.escape(name)}</b> &mdash; {html.escape(lic)}<br>{html.escape(note)}</p>"
        for name, lic, note in LICENSES
    )
    return f"<h3>Components and licenses</h3>{rows}"


class AboutDialog(QDialog):
    """Help > About: icon, name, version, components and licenses, folders (clickable)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AboutDialog")
        self.setWindowTitle(f"About {APP_NAME}")
        self.setWindowIcon(theme.app_icon())
        self.resize(600, 560)

        icon = QLabel(self)
        icon.setPixmap(theme.app_icon().pixmap(64, 64))
        title = QLabel(f"<span style='font-size:18pt; font-weight:600'>{APP_NAME}</span><br>"
                       f"Version {__version__}<br>Chat offline with Gemma 4 on your own computer.",
                       self)
        title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        header = QHBoxLayout()
        header.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        header.addSpacing(12)
        header.addWidget(title, 1)

        versions = " · ".join(f"{name} {ver}" for name, ver in component_versions())
        self.versions_label = QLabel(versions, self)
        self.versions_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.versions_label.setWordWrap(True)

        self.licenses_view = QTextBrowser(self)
        self.licenses_view.setOpenExternalLinks(True)
        self.licenses_view.setHtml(licenses_html())

        folders = QFormLayout()
        self.folder_labels: dict[str, QLabel] = {}
        for name, path in folder_paths():
            url = QUrl.fromLocalFile(str(path)).toString()
            label = QLabel(f"<a href='{html.escape(url)}'>{html.escape(str(path))}</a>", self)
            label.setOpenExternalLinks(True)  # opens the folder in the file manager
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
            label.setToolTip(f"Open the {name.lower()} folder")
            folders.addRow(f"{name}:", label)
            self.folder_labels[name] = label

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.versions_label)
        layout.addWidget(self.licenses_view, 1)
        layout.addLayout(folders)
        layout.addWidget(buttons)
