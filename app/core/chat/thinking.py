"""Route streamed model text into "thinking", "answer" and "tool_call" pieces (Gemma 4).

Gemma 4 writes ``<|channel>thought\\n…thinking…<channel|>…answer…<turn|>``. The text arrives
in token pieces, and a marker may be split over several pieces or merged with ordinary text
in one. The splitter is incremental: it holds back only the tail of the text that could still
turn out to be the start of a marker, so the user never sees a half marker and never waits
for more than a marker's length of text.

A native tool call ``<|tool_call>call:NAME{…}<tool_call|>`` comes out as one "tool_call"
piece holding the whole block, markers included (ready for ``parse_tool_calls``), only once
it is complete; a close marker inside a ``<|"|>…<|"|>`` string does not end it.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["thinking", "answer", "tool_call"]
Piece = tuple[str, str]

CHANNEL_OPEN: Final = "<|channel>"
CHANNEL_CLOSE: Final = "<channel|>"
THOUGHT_NAME: Final = "thought"
TOOL_CALL_OPEN: Final = "<|tool_call>"
TOOL_CALL_CLOSE: Final = "<tool_call|>"
STRING_DELIM: Final = '<|"|>'

# Anything after one of these belongs to a later turn the model should never have written
# (llama.cpp normally stops on the end-of-generation token and never shows it as text).
# <|tool_response> is where the model hands over to the app after its calls (llama.cpp treats
# it as end of generation).
END_MARKERS: Final = ("<turn|>", "<|turn>", "<end_of_turn>", "<eos>", "<|tool_response>")

_ALL_MARKERS: Final = (CHANNEL_OPEN, CHANNEL_CLOSE, TOOL_CALL_OPEN, TOOL_CALL_CLOSE, *END_MARKERS)
_IN_CALL_MARKERS: Final = (STRING_DELIM, TOOL_CALL_CLOSE, *END_MARKERS)
_LONGEST: Final = max(len(m) for m in (*_ALL_MARKERS, *_IN_CALL_MARKERS))

_ANSWER: Final = "answer"
_THINKING: Final = "thinking"
_CHANNEL_NAME: Final = "channel-name"  # just after <|channel>, reading "thought" and its newline
_DONE: Final = "done"
_TOOL_CALL: Final = "tool_call"


# Every marker starts with "<", so only a tail from a "<" can be the start of one.
assert all(m.startswith("<") for m in (*_ALL_MARKERS, *_IN_CALL_MARKERS))


def _held_prefix_length(text: str, markers: tuple[str, ...] = _ALL_MARKERS) -> int:
    """Length of the longest tail of text that is a proper prefix of some marker."""
    # Runs at every streamed piece: look only at the tails that start at a "<" (the earliest
    # is the longest) instead of trying every length.
    end = len(text)
    at = text.find("<", max(0, end - (_LONGEST - 1)))
    while at >= 0:
        tail = text[at:]
        if any(marker.startswith(tail) for marker in markers):
            return end - at
        at = text.find("<", at + 1)
    return 0


def _first_of(text: str, markers: tuple[str, ...]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for marker in markers:
        index = text.find(marker)
        if index >= 0 and (best is None or index < best[0]):
            best = (index, marker)
    return best


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
        self._call = ""  # the tool-call block read so far
        self._call_in_string = False
        self._state_after_call = _ANSWER

    @property
    def in_thinking(self) -> bool:
        """True while the model is inside its thought (the UI shows "Thinking…")."""
        return self._state in (_THINKING, _CHANNEL_NAME)

    @property
    def in_tool_call(self) -> bool:
        """True while a tool-call block is being written (the UI shows "Calling a tool…")."""
        return self._state == _TOOL_CALL

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
        if self._call:  # a call the stream never closed: the parser will report it
            self._emit(out, _TOOL_CALL, self._call)
            self._call = ""
        self._buffer = ""
        return out

    def _emit(self, out: list[Piece], kind: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == kind and kind != _TOOL_CALL:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))

    def _drain(self, out: list[Piece], *, final: bool) -> None:
        while self._buffer and self._state != _DONE:
            if self._state == _CHANNEL_NAME:
                if not self._read_channel_name(final=final):
                    return
                continue
            if self._state == _TOOL_CALL:
                if not self._read_tool_call(out, final=final):
                    return
                continue
            kind = _THINKING if self._state == _THINKING else _ANSWER
            hit = _first_of(self._buffer, _ALL_MARKERS)
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
            elif marker == TOOL_CALL_OPEN:
                self._state_after_call = self._state
                self._state = _TOOL_CALL
                self._call = TOOL_CALL_OPEN
                self._call_in_string = False
            elif marker == TOOL_CALL_CLOSE:
                pass  # a stray close marker outside a call is dropped
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

    def _read_tool_call(self, out: list[Piece], *, final: bool) -> bool:
        """Move call text into the block; False when more text is needed."""
        markers = (STRING_DELIM,) if self._call_in_string else _IN_CALL_MARKERS
        hit = _first_of(self._buffer, markers)
        if hit is None:
            keep = 0 if final else _held_prefix_length(self._buffer, markers)
            self._call += self._buffer[: len(self._buffer) - keep]
            self._buffer = self._buffer[len(self._buffer) - keep :]
            return False
        index, marker = hit
        if marker == STRING_DELIM:
            self._call += self._buffer[: index + len(marker)]
            self._buffer = self._buffer[index + len(marker) :]
            self._call_in_string = not self._call_in_string
            return True
        if marker == TOOL_CALL_CLOSE:
            self._emit(out, _TOOL_CALL, self._call + self._buffer[: index + len(marker)])
            self._buffer = self._buffer[index + len(marker) :]
            self._call = ""
            self._state = self._state_after_call
            return True
        # End of turn inside a call: hand the broken block on, the parser reports it.
        self._emit(out, _TOOL_CALL, self._call + self._buffer[:index])
        self._call = ""
        self._state = _DONE
        self._buffer = ""
        return True


def split_text(text: str) -> tuple[str, str]:
    """Split a complete raw reply into (thinking, answer); tool-call blocks go to neither."""
    splitter = ThinkingSplitter()
    parts = {_THINKING: "", _ANSWER: "", _TOOL_CALL: ""}
    for kind, piece in [*splitter.feed(text), *splitter.flush()]:
        parts[kind] += piece
    return parts[_THINKING], parts[_ANSWER]


def strip_thinking(text: str) -> str:
    """The answer part of a raw reply: thought channels and markers removed."""
    return split_text(text)[1]
