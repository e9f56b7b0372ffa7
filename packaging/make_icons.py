"""Render the app icon (resources/icons/app.svg) to PNGs, a Windows .ico and a macOS .icns.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py build/icons

Qt's QSvgRenderer draws the SVG (the same renderer the app uses for its icons); Pillow packs
the PNGs into ICO and ICNS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render_pngs(svg: Path, outdir: Path) -> dict[int, Path]:
    """One PNG per size: outdir/gemma-desktop-<n>.png."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    outdir.mkdir(parents=True, exist_ok=True)
    out: dict[int, Path] = {}
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        path = outdir / f"gemma-desktop-{size}.png"
        if not image.save(str(path)):
            raise SystemExit(f"could not write {path}")
        out[size] = path
    return out


def pack(pngs: dict[int, Path], outdir: Path) -> None:
    """app.ico (16..256) and app.icns (16..512) from the rendered PNGs."""
    from PIL import Image

    biggest = Image.open(pngs[max(pngs)]).convert("RGBA")
    ico_sizes = [(s, s) for s in SIZES if s <= 256]
    biggest.save(outdir / "app.ico", sizes=ico_sizes)
    biggest.save(outdir / "app.icns")


def main(argv: list[str]) -> int:
    outdir = Path(argv[0]) if argv else Path("build/icons")
    svg = Path(__file__).resolve().parents[1] / "resources" / "icons" / "app.svg"
    pngs = render_pngs(svg, outdir)
    pack(pngs, outdir)
    print(f"icons: {len(pngs)} PNG sizes, app.ico, app.icns in {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
