"""The window's models: the shared ModelsContext, its model manager and the "Get it" downloads."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QWidget


class WindowModels:
    """Makes the ModelsContext on first use and opens the one model manager over it."""

    def __init__(self, window: Any, settings: Any, client: Any) -> None:
        self._window: Any = window
        self._settings = settings
        self._client = client
        self._context: Any = None  # ModelsContext, created on first use (model manager, welcome)
        self.dialog: Any = None

    def context(self) -> Any:
        """The catalog, downloads and hardware probe the model manager and welcome screen share."""
        if self._context is None:
            from app.ui.model_context import ModelsContext

            parent: QWidget = self._window
            self._context = ModelsContext(self._settings, parent=parent)
            self._context.sig_use_requested.connect(self._window.load_model)
            self._context.probe.sig_finished.connect(self._on_probe_finished)
        return self._context

    def open_manager(self) -> Any:
        """Show the model manager (non-modal; downloads go on when it is closed)."""
        from app.ui.model_manager import ModelManagerDialog

        if self.dialog is None:
            self.dialog = ModelManagerDialog(self.context(), self._window)
            self.dialog.sig_settings_changed.connect(self._window.sig_settings_changed)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def get_projector(self) -> None:
        """"Get it" on the no-projector notice: fetch the active model's projector, then reload."""
        info = self._client.model_info or {}
        entry = self.context().catalog.find_by_filename(str(info.get("path", "")))
        if entry is None or entry.mmproj is None:
            self.open_manager()  # not a catalog model: the manager shows what there is
            return
        self._start_download(entry.id, then_use=True)

    def get_audio_model(self) -> None:
        """"Get it" on the no-voice-model notice: fetch the smallest E-series model for transcription."""
        ctx = self.context()
        small = [e for e in ctx.catalog.entries() if e.variant.id == "E2B" and e.mmproj is not None]
        if not small:
            self.open_manager()
            return
        self._start_download(min(small, key=lambda e: e.file.size).id, then_use=False)

    def shutdown(self) -> None:
        if self._context is not None:
            self._context.shutdown()  # downloads pause; their partial files resume next time

    def _start_download(self, entry_id: str, then_use: bool) -> None:
        ctx = self.context()
        try:
            job = ctx.download(entry_id)  # files already installed are verified, not fetched again
        except Exception as exc:  # noqa: BLE001 - offline, no disk space: say so
            self._window.banner.show_notice("Couldn't start the download", str(exc))
            return
        if then_use:
            job.sig_finished.connect(lambda _path: ctx.use(entry_id))
        self.open_manager()  # shows the progress, pause and cancel

    def _on_probe_finished(self, _report: Any) -> None:
        # The settings dialog's memory estimates use the probed GPU too, once it is known.
        wiring = getattr(self._window, "settings_wiring", None)
        if wiring is not None and self._context is not None:
            wiring.machine = self._context.machine()
