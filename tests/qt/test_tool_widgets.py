"""Tool call block and consent dialog: behaviour, and offscreen screenshots of both states."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from app.core.tools.loop import Consent
from app.ui import theme
from app.ui.tool_block import RESULT_BUDGET, ToolBlock, truncate
from app.ui.tool_consent import ToolConsentDialog

ARGS = {"timezone": "Asia/Tokyo", "options": {"format": "iso", "fields": ["date", "time"]}}
RESULT = {
    "timezone": "Asia/Tokyo",
    "datetime": "2026-12-01T03:21:51+09:00",
    "day_of_week": "Tuesday",
    "is_dst": False,
}


@pytest.fixture
def themed(qapp: QApplication) -> QApplication:
    theme.ThemeManager(qapp, "light").apply()
    return qapp


def test_block_goes_from_waiting_to_done_and_folds(themed: QApplication) -> None:
    block = ToolBlock("get_current_time", ARGS, server="time")
    assert block.header_text() == "Waiting for your permission to run get_current_time"
    assert block.expanded and '"timezone": "Asia/Tokyo"' in block.args_view.text()
    assert block.result_view.isHidden()
    block.set_state("running")
    assert block.header_text() == "Running get_current_time…"
    block.set_result(RESULT)
    assert block.header_text() == "Ran get_current_time" and not block.expanded
    assert block.show_all.isHidden()  # short result: nothing cut
    block.header.click()
    assert block.expanded and '"day_of_week": "Tuesday"' in block.result_view.text()


def test_long_result_is_cut_with_the_full_text_one_click_away(themed: QApplication) -> None:
    long_text = "\n".join(f"line {i}: " + "x" * 40 for i in range(200))
    block = ToolBlock("read_file", {"path": "/tmp/a"})
    block.set_result(long_text)
    block.set_expanded(True)
    shown = block.result_view.text()
    assert len(shown) <= RESULT_BUDGET + 2 and shown.endswith("…")
    assert (
        not block.show_all.isHidden()
        and f"({len(long_text):,} characters)" in block.show_all.text()
    )
    block.show_all.click()
    assert block.result_view.text() == long_text == block.result_text
    assert block.show_all.isHidden()


def test_error_and_denied_stay_open(themed: QApplication) -> None:
    failed = ToolBlock("get_current_time", {})
    failed.set_result({"error": "no answer from 'time' within 60 s"}, is_error=True)
    assert failed.header_text() == "get_current_time failed" and failed.expanded
    denied = ToolBlock("rm", {"path": "/"})
    denied.set_state("denied")
    denied.set_result({"error": "the user denied this tool call"}, is_error=True)
    assert denied.header_text() == "Did not run rm (denied)"


def test_truncate_keeps_short_text() -> None:
    assert truncate("abc", 10) == ("abc", False)
    assert truncate("a" * 20, 10) == ("a" * 10 + "\n…", True)


@pytest.mark.parametrize(
    ("button", "choice"),
    [
        ("allow_button", Consent.ALLOW_ONCE),
        ("always_button", Consent.ALWAYS),
        ("deny_button", Consent.DENY),
    ],
)
def test_consent_dialog_answers(themed: QApplication, button: str, choice: Consent) -> None:
    dialog = ToolConsentDialog("get_current_time", ARGS, server="time")
    assert '"fields": [\n      "date"' in dialog.arguments_view.toPlainText()
    QTimer.singleShot(0, getattr(dialog, button).click)
    assert dialog.ask() is choice


def test_closing_the_consent_dialog_denies(themed: QApplication) -> None:
    dialog = ToolConsentDialog("x", {})
    QTimer.singleShot(0, dialog.reject)
    assert dialog.ask() is Consent.DENY


def save_screenshots(folder: Path) -> list[Path]:
    """A call awaiting consent (block + dialog) and a finished call, light theme."""
    folder.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    page = QWidget()
    page.setObjectName("ChatPage")
    page.resize(640, 360)
    layout = QVBoxLayout(page)
    waiting = ToolBlock("get_current_time", ARGS, server="time", parent=page)
    layout.addWidget(waiting)
    layout.addStretch(1)
    page.show()
    dialog = ToolConsentDialog(
        "get_current_time",
        ARGS,
        server="time",
        description="Get current time in a specific timezone",
    )
    dialog.show()
    done_page = QWidget()
    done_page.resize(640, 420)
    done_layout = QVBoxLayout(done_page)
    done = ToolBlock("get_current_time", ARGS, server="time", parent=done_page)
    done.set_result(RESULT)
    done.set_expanded(True)
    long = ToolBlock("fetch_page", {"url": "https://example.org"}, parent=done_page)
    long.set_result("\n".join(f"<p>paragraph {i} " + "lorem ipsum " * 6 for i in range(60)))
    done_layout.addWidget(done)
    done_layout.addWidget(long)
    long.set_expanded(True)
    done_layout.addStretch(1)
    done_page.show()
    for widget, name in (
        (page, "tool-awaiting-block"),
        (dialog, "tool-awaiting-consent"),
        (done_page, "tool-finished"),
    ):
        QApplication.processEvents()
        path = folder / f"{name}.png"
        assert widget.grab().save(str(path))
        shots.append(path)
    for widget in (page, dialog, done_page):
        widget.close()
    return shots


def test_screenshots_are_written(themed: QApplication, tmp_path: Path) -> None:
    shots = save_screenshots(tmp_path)
    assert [p.name for p in shots] == [
        "tool-awaiting-block.png",
        "tool-awaiting-consent.png",
        "tool-finished.png",
    ]
    assert all(p.stat().st_size > 2000 for p in shots)


if __name__ == "__main__":  # QT_QPA_PLATFORM=offscreen python -m tests.qt.test_tool_widgets DIR
    app = QApplication.instance() or QApplication(sys.argv)
    theme.ThemeManager(app, "light").apply()
    for shot in save_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/shots")):
        print(shot)
