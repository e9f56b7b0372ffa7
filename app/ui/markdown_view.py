"""Markdown answers: prose as rich text, fenced code as its own monospace box with a Copy button.

A streamed answer is split into segments (prose / code). Only the segments whose text changed
are re-rendered, so a long answer does not re-layout from the top on every batch of tokens,
and earlier paragraphs never flicker.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PySide6.QtCore import QSize, QSizeF, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.ui import theme

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")


@dataclass(frozen=True)
class Segment:
    """A run of prose ('text') or a fenced code block ('code')."""

    kind: str
    text: str
    lang: str = ""
    closed: bool = True


_BLOCK_START = re.compile(r"^(\s|[-*+>|]|\d+[.)])")
# Long prose is cut at paragraph breaks into pieces of about this size, so that streaming
# re-renders only the last piece instead of the whole answer.
PROSE_CHUNK_CHARS = 1200


def _prose_segments(lines: list[str]) -> list[Segment]:
    pieces: list[Segment] = []
    start = 0
    size = 0
    for i, line in enumerate(lines):
        size += len(line) + 1
        if (size >= PROSE_CHUNK_CHARS and not line.strip() and 0 < i < len(lines) - 1
                and lines[i - 1].strip() and not _BLOCK_START.match(lines[i - 1])
                and lines[i + 1].strip() and not _BLOCK_START.match(lines[i + 1])):
            # A blank line between two plain paragraphs: no list, quote or table spans it.
            text = "\n".join(lines[start:i]).strip("\n")
            if text.strip():
                pieces.append(Segment("text", text))
            start, size = i + 1, 0
    text = "\n".join(lines[start:]).strip("\n")
    if text.strip():
        pieces.append(Segment("text", text))
    return pieces


def split_markdown(source: str) -> list[Segment]:
    """Split Markdown into prose and fenced-code segments; an unclosed fence is a streaming block."""
    segments: list[Segment] = []
    prose: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        fence, lang = match.group(1), match.group(2)
        segments.extend(_prose_segments(prose))
        prose = []
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        if not closed and body and not body[-1].strip():
            body.pop()  # a streaming block's trailing newline is not a line of code yet
        segments.append(Segment("code", "\n".join(body), lang, closed))
    segments.extend(_prose_segments(prose))
    return segments


class TextView(QTextBrowser):
    """A read-only rich text view that is exactly as tall as its content (no inner scrolling)."""

    def __init__(self, object_name: str = "MessageText", wrap: bool = True,
                 parent: QWidget | None = None, padding: tuple[int, int] = (0, 0)) -> None:
        super().__init__(parent)
        self._vpad = padding[1]
        self.setViewportMargins(padding[0], padding[1], padding[0], padding[1])
        self.setObjectName(object_name)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setOpenExternalLinks(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._wrap = wrap
        if wrap:
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        else:
            self.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
            self.setWordWrapMode(QTextOption.WrapMode.NoWrap)
            self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(40)
        self.document().setDocumentMargin(0)
        self.document().documentLayout().documentSizeChanged.connect(self._on_layout_size_changed)
        self.setFixedHeight(4)

    def set_markdown_styled(self, markdown: str) -> None:
        """setMarkdown, then give inline `code` a tinted background (Markdown import leaves none)."""
        self.setMarkdown(markdown)
        if "`" in markdown:
            self._style_inline_code()

    def _style_inline_code(self) -> None:
        tint = QTextCharFormat()
        tint.setBackground(QColor(theme.color("code_header")))
        block = self.document().begin()
        spans: list[tuple[int, int]] = []
        # textFormats(), not block iterators: PySide's `iterator += 1` corrupts refcounts.
        while block.isValid():
            for span in block.textFormats():
                if span.format.fontFixedPitch():
                    spans.append((block.position() + span.start, span.length))
            block = block.next()
        if not spans:
            return
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()  # one re-layout for all spans, not one per span
        for start, length in spans:
            cursor.setPosition(start)
            cursor.setPosition(start + length, QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(tint)
        cursor.endEditBlock()

    def append_plain(self, text: str) -> None:
        """Append text at the end without re-laying out what is already there."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(super().sizeHint().width(), self.height())

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        # Vertical wheel belongs to the transcript; horizontal scrolls a wide code block.
        if not self._wrap and abs(event.angleDelta().x()) > abs(event.angleDelta().y()):
            super().wheelEvent(event)
            return
        event.ignore()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._fit_height()

    def _on_layout_size_changed(self, _size: QSizeF) -> None:
        self._fit_height()

    def _fit_height(self) -> None:
        height = math.ceil(self.document().size().height())
        bar = self.horizontalScrollBar()
        if not self._wrap and self.document().idealWidth() > self.viewport().width() + 1:
            height += bar.sizeHint().height()
        height += 2 * self.frameWidth() + 2 * self._vpad
        if height != self.height():
            self.setFixedHeight(max(height, 4))


class CodeBlockWidget(QFrame):
    """A fenced code block: language label, Copy button, monospace body that scrolls sideways."""

    def __init__(self, lang: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CodeBlock")
        self._code = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        header = QWidget(self)
        header.setObjectName("CodeHeader")
        header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        row = QHBoxLayout(header)
        row.setContentsMargins(14, 3, 6, 3)
        self.lang_label = QLabel(lang or "code", header)
        self.lang_label.setObjectName("CodeLang")
        row.addWidget(self.lang_label)
        row.addStretch(1)
        self.copy_button = QToolButton(header)
        self.copy_button.setObjectName("CodeCopy")
        self.copy_button.setText("Copy")
        self.copy_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.copy_button.setIconSize(theme.icon_size(14))
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.copy_button.clicked.connect(self._on_copy_clicked)
        row.addWidget(self.copy_button)
        layout.addWidget(header)

        self.body = TextView("CodeText", wrap=False, parent=self, padding=(14, 10))
        self.body.setFont(theme.mono_font())
        layout.addWidget(self.body)
        self.refresh_icons()

    @property
    def code(self) -> str:
        return self._code

    def set_lang(self, lang: str) -> None:
        self.lang_label.setText(lang or "code")

    def set_code(self, code: str) -> None:
        if code == self._code:
            return
        if code.startswith(self._code) and self._code:
            self.body.append_plain(code[len(self._code):])
        else:
            self.body.setPlainText(code)
        self._code = code

    def refresh_icons(self) -> None:
        self.copy_button.setIcon(theme.icon("copy", "text_muted", 14))

    def _on_copy_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self._code)
        self.copy_button.setText("Copied")
        self.copy_button.setIcon(theme.icon("check", "text_muted", 14))
        QTimer.singleShot(1500, self, self._on_copy_reset)

    def _on_copy_reset(self) -> None:
        self.copy_button.setText("Copy")
        self.refresh_icons()


class AnswerView(QWidget):
    """The answer of one assistant message, rendered from Markdown segment by segment."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(10)
        self._widgets: list[QWidget] = []
        self._segments: list[Segment] = []
        self._markdown = ""

    @property
    def markdown(self) -> str:
        return self._markdown

    def segment_widgets(self) -> list[QWidget]:
        return list(self._widgets)

    def set_markdown(self, markdown: str) -> None:
        """Show this Markdown, touching only the segments that changed."""
        if markdown == self._markdown:
            return
        self._markdown = markdown
        segments = split_markdown(markdown)
        for index, segment in enumerate(segments):
            old = self._segments[index] if index < len(self._segments) else None
            if old == segment:
                continue
            if old is None or old.kind != segment.kind:
                self._replace_widget(index, self._make_widget(segment))
            self._update_widget(self._widgets[index], segment)
        for widget in self._widgets[len(segments):]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[len(segments):]
        self._segments = segments

    def _make_widget(self, segment: Segment) -> QWidget:
        if segment.kind == "code":
            return CodeBlockWidget(segment.lang, self)
        view = TextView("MessageText", parent=self)
        return view

    def _replace_widget(self, index: int, widget: QWidget) -> None:
        if index < len(self._widgets):
            old = self._widgets[index]
            self._layout.replaceWidget(old, widget)
            old.deleteLater()
            self._widgets[index] = widget
        else:
            self._layout.addWidget(widget)
            self._widgets.append(widget)

    @staticmethod
    def _update_widget(widget: QWidget, segment: Segment) -> None:
        if isinstance(widget, CodeBlockWidget):
            widget.set_lang(segment.lang)
            widget.set_code(segment.text)
        elif isinstance(widget, TextView):
            widget.set_markdown_styled(segment.text)

    def refresh_icons(self) -> None:
        """Theme changed: re-tint icons and inline code."""
        for widget, segment in zip(self._widgets, self._segments, strict=False):
            if isinstance(widget, CodeBlockWidget):
                widget.refresh_icons()
            elif isinstance(widget, TextView):
                widget.set_markdown_styled(segment.text)
