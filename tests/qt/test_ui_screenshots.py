"""Offscreen screenshots of the four main states, light and dark, into ./screenshots/."""

from __future__ import annotations

from PySide6.QtGui import QImage

from tests.qt import screenshots


def _distinct_colours(image: QImage) -> int:
    colours = set()
    for y in range(0, image.height(), 7):
        for x in range(0, image.width(), 7):
            colours.add(image.pixel(x, y))
    return len(colours)


def test_screenshots_of_every_state(qtbot) -> None:
    paths = screenshots.main()
    names = sorted(p.stem for p in paths)
    assert names == sorted(f"{t}-{s}" for t in ("light", "dark") for s in screenshots.STATES)
    for path in paths:
        image = QImage(str(path))
        assert (image.width(), image.height()) == (1200, 800), path
        assert _distinct_colours(image) > 40, f"{path} looks blank"
    light = QImage(str(screenshots.SCREENSHOT_DIR / "light-answer.png"))
    dark = QImage(str(screenshots.SCREENSHOT_DIR / "dark-answer.png"))
    # The transcript background follows the theme.
    assert light.pixelColor(700, 600).lightness() > 200
    assert dark.pixelColor(700, 600).lightness() < 60
