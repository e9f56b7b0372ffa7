"""Which of the files PyInstaller collected go into the bundle (used by gemma-desktop.spec).

PySide6's hooks are generous: every plugin family of every imported Qt module, and QtMultimedia
alone pulls QtNetwork, its TLS backends and a full FFmpeg. Gemma Desktop needs QtWidgets, SVG
icons, the common image formats, the X11/Wayland/offscreen platforms and QAudioSource, which
talks to PulseAudio from libQt6Multimedia itself: no multimedia plugin, no FFmpeg.
"""

from __future__ import annotations

import re

# Qt plugins we keep, by folder; a folder not listed here is dropped whole.
_KEEP_PLUGINS: dict[str, set[str] | None] = {
    "platforms": {"libqxcb.so", "libqoffscreen.so", "libqwayland.so", "libqminimal.so"},
    # Compose keys and IBus: small, and people type in them (not the virtual keyboard: QML).
    "platforminputcontexts": {"libcomposeplatforminputcontextplugin.so",
                              "libibusplatforminputcontextplugin.so"},
    "xcbglintegrations": None,
    "iconengines": {"libqsvgicon.so"},
    "imageformats": {"libqsvg.so", "libqjpeg.so", "libqgif.so", "libqico.so", "libqwebp.so"},
    "platformthemes": {"libqxdgdesktopportal.so"},  # the GTK theme plugin pulls in all of GTK
    "wayland-shell-integration": {"libxdg-shell.so"},
    "wayland-decoration-client": {"libbradient.so"},
    "wayland-graphics-integration-client": set(),
}

# Qt shared libraries the app never loads (even when some hook or plugin drags them in). Smaller
# ones that Qt's own libraries may link (Concurrent, OpenGL, Xml, ...) are left to prune_orphans.
_DROP_QT_LIBS = re.compile(
    r"libQt6(WebEngine|WebChannel|WebSockets|WebView|Qml|Quick|3D|Pdf|Charts|DataVisualization|Graphs"
    r"|Designer|Help|UiTools|Sql|Test|Bluetooth|Nfc|Positioning|Location|Sensors|Serial|RemoteObjects"
    r"|Scxml|StateMachine|TextToSpeech|SpatialAudio|HttpServer|MultimediaWidgets|MultimediaQuick"
    r"|ShaderTools|VirtualKeyboard|Labs|Lottie"
    r"|EglFSDeviceIntegration|EglFsKmsSupport|Pdf)"
)
# FFmpeg: only Qt's ffmpeg media plugin (dropped) uses it.
_DROP_FFMPEG = re.compile(r"/lib(avcodec|avformat|avutil|swresample|swscale)\.so")


def _qt_plugin(name: str) -> tuple[str, str] | None:
    """('folder', 'file') for a Qt plugin path, else None."""
    marker = "/Qt/plugins/"
    if marker not in name:
        return None
    rest = name.split(marker, 1)[1]
    folder, _, file = rest.rpartition("/")
    return folder, file


def keep_binary(dest: str) -> bool:
    """True if the binary collected at `dest` (a path inside the bundle) should ship."""
    dest = "/" + dest.replace("\\", "/")
    plugin = _qt_plugin(dest)
    if plugin is not None:
        folder, file = plugin
        if folder not in _KEEP_PLUGINS:
            return False
        wanted = _KEEP_PLUGINS[folder]
        return wanted is None or file in wanted
    if _DROP_QT_LIBS.search(dest) or _DROP_FFMPEG.search(dest):
        return False
    # The Python extension modules of Qt modules we excluded (hooks sometimes add them anyway).
    return not re.search(r"/PySide6/Qt(WebEngine|Qml|Quick|3D|Pdf|Charts|DataVis|Graphs)", dest)


def keep_data(dest: str) -> bool:
    """True if the data file collected at `dest` should ship."""
    dest = "/" + dest.replace("\\", "/")
    if "/Qt/translations/" in dest:
        return False  # the UI is English only; Qt's own translations are ~10 MB
    if "/Qt/qml/" in dest or "/Qt/resources/" in dest:  # QML modules, WebEngine resources
        return False
    plugin = _qt_plugin(dest)
    if plugin is not None:
        return keep_binary(dest)
    return not _DROP_QT_LIBS.search(dest)


def _prunable(dest: str) -> bool:
    """Shared libraries that are only there as someone's dependency (not loaded by name)."""
    dest = dest.replace("\\", "/")
    name = dest.rsplit("/", 1)[-1]
    if name.startswith("libpython") or ".cpython-" in name or ".abi3." in name:
        return False  # the bootloader loads libpython; extension modules are imported by name
    return "/" not in dest or dest.startswith("PySide6/Qt/lib/")


def prune_orphans(binaries: list[tuple[str, str, str]], needed_by: object) -> tuple[list, list]:
    """Drop dependency-only libraries that no kept binary needs any more.

    PyInstaller resolves dependencies before our filters run, so the libraries of plugins we
    dropped (GTK for the GTK theme, OpenSSL for TLS, VA-API for FFmpeg, ...) are still listed.
    `needed_by(path)` returns the (name, path) pairs a binary loads (PyInstaller's ldd wrapper,
    which already follows dependencies transitively). Returns (kept, dropped).
    """
    needed: set[str] = set()
    for dest, src, _kind in binaries:
        if not _prunable(dest):
            try:
                needed.update(name for name, _path in needed_by(src))  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - an unreadable binary keeps everything (safe side)
                return binaries, []
    kept, dropped = [], []
    for entry in binaries:
        dest = entry[0]
        name = dest.replace("\\", "/").rsplit("/", 1)[-1]
        (dropped if _prunable(dest) and name not in needed else kept).append(entry)
    return kept, dropped


def drop_dangling_links(*tocs: list[tuple[str, str, str]]) -> list[list[tuple[str, str, str]]]:
    """Remove SYMLINK entries whose target we dropped (PyInstaller adds `libfoo.so.N` links)."""
    import posixpath

    present = {e[0].replace("\\", "/") for toc in tocs for e in toc if e[2] != "SYMLINK"}
    out = []
    for toc in tocs:
        out.append([
            e for e in toc
            if e[2] != "SYMLINK"
            or posixpath.normpath(posixpath.join(posixpath.dirname(e[0]), e[1])) in present
        ])
    return out
