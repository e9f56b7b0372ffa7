"""An incremental parser of `text/event-stream` (Server-Sent Events), as OpenAI streams use it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its type ("message" unless named) and its joined data lines."""

    data: str
    event: str = "message"


class SSEParser:
    """Feed text as it arrives (lines may be split anywhere); get back the complete events."""

    def __init__(self) -> None:
        self._partial = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, text: str) -> list[SSEEvent]:
        self._partial += text
        lines = self._partial.splitlines(keepends=True)
        # The last line may still be growing; one ending in a bare \r may be half of a \r\n.
        self._partial = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        out: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip("\r\n"))
            if event is not None:
                out.append(event)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: a last event without its blank line is still dispatched."""
        out = self.feed("\n") if self._partial else []
        event = self._line("")
        return [*out, event] if event is not None else out

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
