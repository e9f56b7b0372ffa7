"""SettingsDialog, Storage and Voice pages: folders move with their files (off the GUI thread),
cached downloads are deleted, the microphone list is the real PulseAudio one."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from app.core import paths
from app.core.download.store import ModelStore
from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings, load_settings
from app.ui.settings_dialog import SettingsDialog
from app.ui.settings_pages.folder_move import MoveCancelled, move_folder
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401 - the fixture

# Qt Multimedia finds PulseAudio only if it runs before the Voice page first asks for devices.
pytestmark = pytest.mark.usefixtures("pulse")
MIB = 1024 * 1024


def _dialog(qtbot, settings: Settings | None = None, **kw) -> SettingsDialog:
    kw.setdefault("machine", Machine.hypothetical(vram_gib=0, ram_gib=16))
    dialog = SettingsDialog(settings or Settings(), **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


@pytest.fixture()
def other_disk():
    """A folder on another file system (tmpfs), so a move has to copy every byte."""
    if os.stat("/dev/shm").st_dev == os.stat(paths.models_dir()).st_dev:
        pytest.fail("/dev/shm is on the same file system as the test folders")
    root = Path("/dev/shm") / f"gemma-move-{uuid.uuid4().hex}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


class StallMeter:
    """Largest gap between 5 ms timer ticks on the GUI thread (what a user feels as a freeze)."""

    def __init__(self) -> None:
        self.worst = 0
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(5)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> None:
        self._clock.start()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _on_timer_timeout(self) -> None:
        self.worst = max(self.worst, self._clock.restart())


def test_models_folder_moves_across_disks_with_its_files(qtbot, tmp_path, other_disk):
    store = ModelStore()
    source = tmp_path / "big-model.gguf"
    with source.open("wb") as f:
        for _ in range(96):
            f.write(os.urandom(MIB))
    entry = store.import_local(source, copy=True)
    partial = store.root / "ggml-org" / "x.gguf.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"p" * 1000)
    old_root = store.root
    dialog = _dialog(qtbot, store=store)
    target = other_disk / "models"
    dialog.storage_page.models_dir.setText(str(target))
    moving: list[str] = []
    dialog.sig_folder_moving.connect(moving.append)
    meter = StallMeter()
    meter.start()
    with qtbot.waitSignal(dialog.sig_applied, timeout=120_000) as applied, \
            qtbot.waitSignal(dialog.sig_folder_moved, timeout=120_000) as moved:
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
        assert not dialog.apply_button.isEnabled()  # no second apply while files move
    meter.stop()
    assert moving == ["models"]
    assert moved.args == ["models", str(target)]
    assert applied.args[0].models_dir == str(target)
    assert load_settings()[0].models_dir == str(target)
    moved_store = ModelStore(target)
    [again] = moved_store.installed()
    assert again.path == str(target / "local" / "big-model.gguf")
    assert again.sha256 == entry.sha256 and Path(again.path).stat().st_size == 96 * MIB
    assert (target / "ggml-org" / "x.gguf.part").read_bytes() == b"p" * 1000
    assert not any(old_root.iterdir())
    assert dialog.apply_button.isEnabled()
    print(f"worst GUI stall while moving 96 MiB across disks: {meter.worst} ms")
    assert meter.worst < 150


def test_data_folder_move_on_one_disk_tells_the_owner_first(qtbot, tmp_path):
    data = paths.data_dir()
    (data / "history.sqlite3").write_bytes(b"db")
    (data / "attachments").mkdir(exist_ok=True)
    (data / "attachments" / "abc.png").write_bytes(b"png")
    seen_before: list[bool] = []
    dialog = _dialog(qtbot)
    dialog.sig_folder_moving.connect(
        lambda kind: seen_before.append((data / "history.sqlite3").exists()))
    target = tmp_path / "elsewhere" / "data"
    dialog.storage_page.data_dir.setText(str(target))
    with qtbot.waitSignal(dialog.sig_folder_moved, timeout=30_000) as moved:
        dialog.apply()
    assert moved.args == ["data", str(target)]
    assert seen_before == [True]  # the owner could close the database before it moved
    assert (target / "history.sqlite3").read_bytes() == b"db"
    assert (target / "attachments" / "abc.png").read_bytes() == b"png"
    assert not (data / "history.sqlite3").exists()
    assert load_settings()[0].data_dir == str(target)


def test_move_into_a_folder_with_the_same_files_is_refused_and_nothing_moves(qtbot, tmp_path):
    (paths.models_dir() / "a.gguf").write_bytes(b"a")
    target = tmp_path / "taken"
    target.mkdir()
    (target / "a.gguf").write_bytes(b"other")
    dialog = _dialog(qtbot)
    told: list[str] = []
    dialog.inform = lambda title, text: told.append(text)
    dialog.storage_page.models_dir.setText(str(target))
    with qtbot.waitSignal(dialog.sig_applied, timeout=30_000) as applied:
        dialog.apply()
    assert told and "already has a.gguf" in told[0]
    assert applied.args[0].models_dir is None  # still the old folder
    assert (paths.models_dir() / "a.gguf").read_bytes() == b"a"
    assert (target / "a.gguf").read_bytes() == b"other"
    assert dialog.storage_page.models_dir.text() == str(paths.models_dir())


def test_move_into_its_own_subfolder_is_refused_with_a_reason(qtbot):
    dialog = _dialog(qtbot)
    told: list[str] = []
    dialog.inform = lambda title, text: told.append(text)
    dialog.storage_page.models_dir.setText(str(paths.models_dir() / "inner"))
    assert dialog.apply()
    assert "inside" in told[0]


def test_cancelled_copy_leaves_the_source_complete(tmp_path, other_disk):
    source = tmp_path / "src"
    source.mkdir()
    (source / "one.bin").write_bytes(os.urandom(3 * MIB))
    (source / "two.bin").write_bytes(os.urandom(9 * MIB))
    import threading

    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done > 5 * MIB:
            cancel.set()

    with pytest.raises(MoveCancelled):
        move_folder(source, other_disk / "dst", progress=progress, cancel=cancel)
    assert (source / "one.bin").stat().st_size == 3 * MIB
    assert (source / "two.bin").stat().st_size == 9 * MIB
    assert not any((other_disk / "dst").iterdir())


def test_delete_cached_downloads_asks_then_frees_the_space(qtbot):
    root = paths.models_dir()
    (root / "ggml-org").mkdir()
    part = root / "ggml-org" / "gemma.gguf.part"
    part.write_bytes(b"x" * (2 * MIB))
    meta = root / "ggml-org" / "gemma.gguf.part.json"
    meta.write_text("{}")
    keep = root / "ggml-org" / "done.gguf"
    keep.write_bytes(b"model")
    dialog = _dialog(qtbot)
    page = dialog.storage_page
    assert "2.0 MB" in page.cache_label.text() and page.delete_cache.isEnabled()
    dialog.ask = lambda title, text: False
    qtbot.mouseClick(page.delete_cache, Qt.MouseButton.LeftButton)
    assert part.exists() and meta.exists()
    dialog.ask = lambda title, text: True
    qtbot.mouseClick(page.delete_cache, Qt.MouseButton.LeftButton)
    assert not part.exists() and not meta.exists() and keep.exists()
    assert "2.0 MB freed" in page.cache_label.text()
    assert not page.delete_cache.isEnabled()


def test_disk_used_lists_each_installed_file(qtbot, tmp_path):
    store = ModelStore()
    for name, size in (("m1.gguf", 3 * MIB), ("mmproj-m1.gguf", MIB)):
        (tmp_path / name).write_bytes(b"\0" * size)
        store.import_local(tmp_path / name)
    dialog = _dialog(qtbot, store=store)
    rows = [(dialog.storage_page.disk_list.topLevelItem(i).text(0),
             dialog.storage_page.disk_list.topLevelItem(i).text(1))
            for i in range(dialog.storage_page.disk_list.topLevelItemCount())]
    assert rows == [("m1.gguf", "3.0 MB"), ("mmproj-m1.gguf", "1.0 MB")]
    assert "4.0 MB in all" in dialog.storage_page.total_label.text()
    # The projector is not offered as a model; the model brings it along.
    items = dialog.model_page.model_list
    assert items.count() == 1 and items.item(0).text().startswith("m1")
    items.setCurrentRow(0)
    assert dialog.edited().mmproj_path == str(store.root / "local" / "mmproj-m1.gguf")


def test_microphone_choice_is_the_real_device_and_persists(qtbot, pulse: PulseServer):  # noqa: F811
    dialog = _dialog(qtbot)
    combo = dialog.voice_page.microphone
    qtbot.waitUntil(lambda: combo.count() >= 2, timeout=10_000)
    names = [combo.itemText(i) for i in range(combo.count())]
    assert names[0].startswith("System default")
    index = next(i for i, n in enumerate(names) if i > 0 and "FIFO" in n)
    combo.setCurrentIndex(index)
    chosen = combo.currentData()
    assert chosen
    with qtbot.waitSignal(dialog.sig_applied, timeout=10_000) as applied:
        dialog.apply()
    assert applied.args[0].microphone_id == chosen
    assert load_settings()[0].microphone_id == chosen
    again = _dialog(qtbot, load_settings()[0])
    assert again.voice_page.microphone.currentData() == chosen
    # A device that is gone stays visible (and saved) instead of silently becoming the default.
    gone = _dialog(qtbot, Settings(microphone_id="usb-headset-unplugged"))
    assert "not connected" in gone.voice_page.microphone.currentText()
    assert gone.edited().microphone_id == "usb-headset-unplugged"
    time.sleep(0)
