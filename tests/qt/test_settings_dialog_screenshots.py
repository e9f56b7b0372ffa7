"""Offscreen screenshots of every settings page, light and dark, into ./screenshots/.

They are for people to look at (layout, contrast, clipping); the test checks that each page was
drawn in the colours of its theme.
"""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication

from app.core.download.store import ModelStore
from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings
from app.ui import theme
from app.ui.settings_dialog import SettingsDialog
from tests.fixtures.pulse import pulse  # noqa: F401 - the fixture
from tests.qt.screenshots import SCREENSHOT_DIR, save

pytestmark = pytest.mark.usefixtures("pulse")


@pytest.fixture()
def themed_app(qapp: QApplication):
    before = (qapp.styleSheet(), qapp.palette(), qapp.font(), qapp.style().name())
    manager = theme.ThemeManager(qapp)
    yield manager
    qapp.setStyleSheet(before[0])
    qapp.setPalette(before[1])
    qapp.setFont(before[2])
    qapp.setStyle(before[3])
    manager.deleteLater()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_every_page(qtbot, themed_app, scheme, model_270m, tmp_path):
    themed_app.apply(theme=scheme)
    store = ModelStore()
    installed = store.import_local(model_270m, copy=False)
    partial = store.root / "ggml-org" / "gemma-4-E4B-it-Q4_K_M.gguf.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 3_000_000)
    shutil.copyfile(model_270m, tmp_path / "gemma3-270m-copy.gguf")
    settings = Settings(model_path=installed.path, system_prompt="Answer briefly.",
                        recent_models=[str(tmp_path / "gemma3-270m-copy.gguf")], theme=scheme)
    dialog = SettingsDialog(settings, store=store, machine=Machine.hypothetical(8, 32),
                            active_model=installed.path)
    qtbot.addWidget(dialog)
    dialog.show()
    items = dialog.model_page.model_list
    qtbot.waitUntil(lambda: all("reading" not in items.item(i).text()
                                for i in range(items.count())), timeout=30_000)
    expected = QColor(theme.palette_colors(scheme)["window"])
    for index, page in enumerate(dialog.pages):
        dialog.nav.setCurrentRow(index)
        path = save(dialog, f"settings-{scheme}-{page.title.lower()}", SCREENSHOT_DIR)
        image = QImage(str(path))
        assert image.width() >= 800 and image.height() >= 600
        # Right of the sidebar, under the title: the page background of this theme.
        pixel = image.pixelColor(200, image.height() // 2)
        assert abs(pixel.lightness() - expected.lightness()) < 30, (page.title, pixel.name())
