"""Storage page: where models and conversations live, what each model takes, cached downloads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QWidget,
)

from app.core import paths
from app.core.storage.settings import Settings
from app.ui.settings_pages.common import SettingsPage, form, hint, human_size, page_layout, section

PARTIAL_SUFFIXES = (".part", ".part.json")
Ask = Callable[[str, str], bool]


def cached_download_files(models_root: Path) -> list[Path]:
    """Unfinished downloads (bytes so far and their bookkeeping) under the models folder."""
    if not models_root.is_dir():
        return []
    return sorted(p for p in models_root.rglob("*")
                  if p.is_file() and p.name.endswith(PARTIAL_SUFFIXES))


class StoragePage(SettingsPage):
    """Folders (moved with their files on Apply), disk use per model, cached downloads."""

    title = "Storage"

    def __init__(self, models_root: Path, data_root: Path,
                 installed: list[tuple[str, int]], ask: Ask,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._models_root = models_root
        self._data_root = data_root
        self._ask = ask
        self._default_models = paths.models_dir()
        self._default_data = paths.data_dir()
        layout = page_layout(self, "Storage", "Changing a folder moves its files there when you "
                             "press Apply; the app keeps working from the old place until then.")
        section(layout, "FOLDERS")
        rows = form(layout)
        self.models_dir, self.models_browse = self._folder_row(rows, "Models", "Models folder")
        self.data_dir, self.data_browse = self._folder_row(rows, "Conversations",
                                                           "Data folder (conversations)")

        section(layout, "DISK USED")
        self.disk_list = QTreeWidget()
        self.disk_list.setObjectName("DiskList")
        self.disk_list.setAccessibleName("Disk used per model")
        self.disk_list.setColumnCount(2)
        self.disk_list.setHeaderLabels(["File", "Size"])
        self.disk_list.setRootIsDecorated(False)
        self.disk_list.setUniformRowHeights(True)
        header = self.disk_list.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        total = 0
        for name, size in installed:
            item = QTreeWidgetItem([name, human_size(size)])
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.disk_list.addTopLevelItem(item)
            total += size
        self.disk_list.setMinimumHeight(110)
        layout.addWidget(self.disk_list, 1)
        self.total_label = hint(f"{len(installed)} file{'s' if len(installed) != 1 else ''}, "
                                f"{human_size(total)} in all." if installed else
                                "No models are installed yet.")
        layout.addWidget(self.total_label)

        section(layout, "CACHED DOWNLOADS")
        clean_row = QHBoxLayout()
        self.cache_label = hint("")
        self.cache_label.setAccessibleName("Cached downloads")
        self.delete_cache = QPushButton("Delete cached downloads")
        self.delete_cache.setAccessibleName("Delete cached downloads")
        clean_row.addWidget(self.cache_label, 1)
        clean_row.addWidget(self.delete_cache)
        layout.addLayout(clean_row)
        self.delete_cache.clicked.connect(self._on_delete_cache_clicked)
        self.refresh_cache()

    def _folder_row(self, rows: object, label: str, name: str) -> tuple[QLineEdit, QPushButton]:
        line = QLineEdit()
        line.setReadOnly(True)
        line.setAccessibleName(name)
        button = QPushButton("Browse…")
        button.setAccessibleName(f"Choose the {name[0].lower()}{name[1:]}")
        box = QHBoxLayout()
        box.addWidget(line, 1)
        box.addWidget(button)
        rows.addRow(label, box)  # type: ignore[attr-defined]
        button.clicked.connect(lambda: self._on_browse_clicked(line, name))
        return line, button

    # ----- SettingsPage --------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self.models_dir.setText(settings.models_dir or str(self._models_root))
        self.data_dir.setText(settings.data_dir or str(self._data_root))
        for line in (self.models_dir, self.data_dir):
            line.setToolTip(line.text())  # long paths show their tail; the tooltip has all of it

    def store(self, settings: Settings) -> None:
        models, data = self.models_dir.text().strip(), self.data_dir.text().strip()
        # The default folders stay None in the file, so a portable install keeps following them.
        settings.models_dir = models if models and Path(models) != self._default_models else None
        settings.data_dir = data if data and Path(data) != self._default_data else None

    def focus_chain(self) -> list[QWidget]:
        return [self.models_dir, self.models_browse, self.data_dir, self.data_browse,
                self.disk_list, self.delete_cache]

    # ----- public --------------------------------------------------------------------------

    def set_roots(self, models_root: Path, data_root: Path) -> None:
        """After a move: the folders the app now uses."""
        self._models_root, self._data_root = models_root, data_root
        self.refresh_cache()

    def refresh_cache(self) -> None:
        files = cached_download_files(self._models_root)
        size = sum(p.stat().st_size for p in files)
        self.cache_label.setText(f"Unfinished downloads take {human_size(size)}." if files else
                                 "There are no unfinished downloads.")
        self.delete_cache.setEnabled(bool(files))

    def delete_cached_downloads(self) -> int:
        """Delete the unfinished downloads; returns the bytes freed."""
        freed = 0
        for path in cached_download_files(self._models_root):
            try:
                size = path.stat().st_size
                path.unlink()
                freed += size
            except OSError:
                continue
        self.refresh_cache()
        return freed

    # ----- reactions -----------------------------------------------------------------------

    def _on_browse_clicked(self, line: QLineEdit, name: str) -> None:
        chosen = QFileDialog.getExistingDirectory(self, f"Choose the {name.lower()}", line.text())
        if chosen:
            line.setText(chosen)

    def _on_delete_cache_clicked(self) -> None:
        if not self._ask("Delete cached downloads?",
                         "Unfinished downloads will start again from the beginning."):
            return
        freed = self.delete_cached_downloads()
        self.cache_label.setText(f"Deleted: {human_size(freed)} freed.")
