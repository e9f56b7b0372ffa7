"""The composition root: build settings, stores, services and the window; dispatch CLI modes."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys


def _setup_logging() -> None:
    from app.core import paths

    handler = logging.handlers.RotatingFileHandler(
        paths.log_dir() / "gemma-desktop.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: list[str]) -> int:
    """Entry point for main.py and the frozen executable."""
    if argv[:1] == ["--engine-host"]:
        from app.core.engine.host import run_host

        return run_host()
    if argv[:1] == ["--probe-devices"]:  # the device probe's child process, frozen or not
        from app.core.hardware.devices import main as probe_main

        return probe_main()
    if argv[:1] == ["--time-gpus"]:  # the GPU timing op's child process, frozen or not
        from app.core.hardware.gpu_timing import main as timing_main

        return timing_main()
    from app.cli import COMMANDS

    if argv and argv[0] in COMMANDS:
        from app.cli import run_cli

        return run_cli(argv)
    if argv[:1] == ["--version"]:
        from app import APP_NAME, __version__

        print(f"{APP_NAME} {__version__}")
        return 0
    if "--self-test" in argv:
        from app.self_test import run_self_test

        return run_self_test(argv)
    if argv and not argv[0].startswith("-"):
        _unknown_command(argv[0], COMMANDS)
    if not _has_display(argv):
        print(
            "gemma-desktop: no display to open the window on (DISPLAY, WAYLAND_DISPLAY and "
            f"QT_QPA_PLATFORM are unset); use the command line instead: {' | '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return run_gui(argv)


def _unknown_command(word: str, commands: tuple[str, ...]) -> None:
    """Exit 2 with argparse's usual message: a bare word is a command, and this one is not."""
    parser = argparse.ArgumentParser(prog="gemma-desktop")
    parser.add_argument("command", choices=commands)
    parser.parse_args([word])


def _has_display(argv: list[str]) -> bool:
    """Whether Qt can open a window; without this check Qt aborts with a core dump."""
    if not sys.platform.startswith("linux") or "-platform" in argv:
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run_gui(argv: list[str]) -> int:
    """Open the main window."""
    parser = argparse.ArgumentParser(prog="gemma-desktop")
    parser.add_argument("--model", help="open this GGUF model at start")
    parser.add_argument("--mmproj", help="its projector file (images/audio)")
    args, qt_args = parser.parse_known_args(argv)
    _setup_logging()

    from PySide6.QtWidgets import QApplication

    from app import APP_NAME
    from app.ui.app_window import build_main_window

    app = QApplication([sys.argv[0], *qt_args])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName("Gemma Desktop")
    app.setDesktopFileName("gemma-desktop")  # Wayland shells match the window to the menu entry
    window = build_main_window(app, model=args.model, mmproj=args.mmproj)
    window.show()
    if getattr(window, "welcome", None) is not None:
        # First start: the welcome screen's pick uses the Hub's current files (a background
        # listing, at most once a day), not only the approximate sizes shipped with the app.
        window.models_context().refresh_if_stale()
    if os.environ.get("GEMMA_DESKTOP_STARTUP_PROBE"):
        from app.self_test import install_startup_probe

        install_startup_probe(window)
    return int(app.exec())


def console_main() -> None:
    """The `gemma-desktop` console script."""
    sys.exit(main(sys.argv[1:]))
