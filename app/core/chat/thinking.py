"""Route streamed model text into "thinking" and "answer" pieces (Gemma 4 thought channel).

Gemma 4 writes ``<|channel>thought\\n…thinking…<channel|>…answer…<turn|>``. The text arrives
in token pieces, and a marker may be split over several pieces or merged with ordinary text
in one. The splitter is incremental: it holds back only the tail of the text that could still
turn out to be the start of a marker, so the user never sees a half marker and never waits
for more than a marker's length of text.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["thinking", "answer"]
Piece = tuple[str, str]

CHANNEL_OPEN: Final = "<|channel>"
CHANNEL_CLOSE: Final = "<channel|>"
THOUGHT_NAME: Final = "thought"
# Anything after one of these belongs to a later turn the model should never have written
# (llama.cpp normally stops on the end-of-generation token and never shows it as text).
END_MARKERS: Final = ("<turn|>", "<|turn>", "<end_of_turn>", "<eos>")

_ALL_MARKERS: Final = (CHANNEL_OPEN, CHANNEL_CLOSE, *END_MARKERS)
_LONGEST: Final = max(len(m) for m in _ALL_MARKERS)

_ANSWER: Final = "answer"
_THINKING: Final = "thinking"
_CHANNEL_NAME: Final = "channel-name"  # just after <|channel>, reading "thought" and its newline
_DONE: Final = "done"


def _held_prefix_length(text: str) -> int:
    """Length of the longest tail of text that is a proper prefix of some marker."""
    for size in range(min(len(text), _LONGEST - 1), 0, -1):
        tail = text[-size:]
        if any(marker.startswith(tail) for marker in _ALL_MARKERS):
            return size
    return 0


class ThinkingSplitter:
    """Incremental router of Gemma 4 output into ("thinking" | "answer", text) pieces.

    ``feed`` returns the pieces that are certain so far (consecutive text of one kind merged,
    never an empty piece); ``flush`` returns the rest at the end of the stream. A thought that
    is never closed comes back as thinking. Markers never appear in the output: a stray
    ``<channel|>`` in the answer or a nested ``<|channel>`` in a thought is dropped, and text
    after an end-of-turn marker is discarded.

    ``start_in_thinking`` is for prompts that already end with ``<|channel>thought\\n``.
    """

    def __init__(self, *, start_in_thinking: bool = False) -> None:
        self._state: str = _THINKING if start_in_thinking else _ANSWER
        self._buffer = ""
        self._saw_thought = start_in_thinking

    @property
    def in_thinking(self) -> bool:
        """True while the model is inside its thought (the UI shows "Thinking…")."""
        return self._state in (_THINKING, _CHANNEL_NAME)

    @property
    def saw_thought(self) -> bool:
        """True once a thought channel was opened in this stream (even an empty one)."""
        return self._saw_thought

    @property
    def finished(self) -> bool:
        """True once an end-of-turn marker arrived; later text is ignored."""
        return self._state == _DONE

    def feed(self, text: str) -> list[Piece]:
        """Take the next piece of streamed text; return the pieces now known for sure."""
        out: list[Piece] = []
        if self._state == _DONE or not text:
            return out
        self._buffer += text
        self._drain(out, final=False)
        return out

    def flush(self) -> list[Piece]:
        """End of stream: return whatever is still held (a held tail was not a marker)."""
        out: list[Piece] = []
        if self._state != _DONE:
            self._drain(out, final=True)
        self._buffer = ""
        return out

    def _emit(self, out: list[Piece], kind: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))

    def _drain(self, out: list[Piece], *, final: bool) -> None:
        while self._buffer and self._state != _DONE:
            if self._state == _CHANNEL_NAME:
                if not self._read_channel_name(final=final):
                    return
                continue
            kind = _THINKING if self._state == _THINKING else _ANSWER
            hit = self._first_marker()
            if hit is None:
                keep = 0 if final else _held_prefix_length(self._buffer)
                self._emit(out, kind, self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep :]
                return
            index, marker = hit
            self._emit(out, kind, self._buffer[:index])
            self._buffer = self._buffer[index + len(marker) :]
            if marker == CHANNEL_OPEN:
                if self._state == _ANSWER:
                    self._state = _CHANNEL_NAME
                    self._saw_thought = True
            elif marker == CHANNEL_CLOSE:
                self._state = _ANSWER
            else:
                self._state = _DONE
                self._buffer = ""

    def _read_channel_name(self, *, final: bool) -> bool:
        """Consume "thought" and the newline after it; False when more text is needed."""
        name = THOUGHT_NAME + "\n"
        buf = self._buffer
        if buf.startswith(name):
            self._buffer = buf[len(name) :]
        elif buf.startswith(THOUGHT_NAME) and len(buf) > len(THOUGHT_NAME):
            self._buffer = buf[len(THOUGHT_NAME) :]  # e.g. an empty thought: "thought<channel|>"
        elif name.startswith(buf) and not final:
            return False
        elif name.startswith(buf):
            self._buffer = ""  # stream ended inside the channel name: nothing to show
        # Any other channel name is not consumed: its text is shown as thinking.
        self._state = _THINKING
        return True

    def _first_marker(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for marker in _ALL_MARKERS:
            index = self._buffer.find(marker)
            if index >= 0 and (best is None or index < best[0]):
                best = (index, marker)
        return best


def split_text(text: str) -> tuple[str, str]:
    """Split a complete raw reply into (thinking, answer)."""
    splitter = ThinkingSplitter()
    parts = {_THINKING: "", _ANSWER: ""}
    for kind, piece in [*splitter.feed(text), *splitter.flush()]:
        parts[kind] += piece
    return parts[_THINKING], parts[_ANSWER]


def strip_thinking(text: str) -> str:
    """The answer part of a raw reply: thought channels and markers removed."""
    return split_text(text)[1]
