"""Route raw generated text into thinking/answer and batch it for the screen."""

from __future__ import annotations

from app.core.chat.thinking import ThinkingSplitter


class StreamAssembler:
    """Feeds pieces through the splitter; `take()` hands out what arrived since the last take.

    Consecutive pieces of the same kind are merged, so one host message is usually one or two deltas.
    """

    def __init__(self) -> None:
        self._splitter = ThinkingSplitter()
        self._pending: list[tuple[str, str]] = []

    def _add(self, pieces: list[tuple[str, str]]) -> None:
        for kind, text in pieces:
            if not text:
                continue
            if self._pending and self._pending[-1][0] == kind:
                self._pending[-1] = (kind, self._pending[-1][1] + text)
            else:
                self._pending.append((kind, text))

    def feed(self, text: str) -> None:
        self._add(self._splitter.feed(text))

    def finish(self) -> None:
        """End of generation: whatever the splitter held back is released."""
        self._add(self._splitter.flush())

    def take(self) -> list[tuple[str, str]]:
        pending, self._pending = self._pending, []
        return pending
