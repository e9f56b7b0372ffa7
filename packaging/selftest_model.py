"""Build the tiny synthetic Gemma 4 that ships in the bundle for `GemmaDesktop --self-test`.

The test suite's synthetic Gemma 4 (tests/fixtures/gemma4.py) borrows the real 262,144-piece
Gemma 3 vocabulary, which makes it ~70 MB: too heavy to ship. This writes the same model
(same architecture, layers, PLE, shared KV, official chat template: the fixture's own writer)
with a ~400-piece SentencePiece vocabulary: every Gemma 4 marker, byte fallback for anything
else, and the ASCII characters as pieces. The file is well under 1 MB.

Runs at build time, from a source checkout (it needs `gguf` and tests/fixtures):

    .venv/bin/python packaging/selftest_model.py OUTDIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODEL_FILE = "selftest-gemma4.gguf"

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_BYTE = 1, 2, 3, 4, 6
_WORDS = ("the", "and", "is", "a", "to", "of", "in", "it", "you", "Hello", "think", "answer", "model")


def tiny_vocab() -> tuple[list[bytes], list[float], list[int]]:
    """Specials, Gemma 4 markers, 256 byte tokens, ASCII pieces and a few words."""
    from tests.fixtures import gemma4

    tokens: list[bytes] = [b"<pad>", b"<eos>", b"<bos>", b"<unk>"]
    types = [TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_UNKNOWN]
    for text in ("<|turn>", "<turn|>", "<|image>", "<image|>", *gemma4.CONTROL_MARKERS):
        tokens.append(text.encode())
        types.append(TOKEN_CONTROL)
    for text in gemma4.VISIBLE_MARKERS:
        tokens.append(text.encode())
        types.append(TOKEN_USER_DEFINED)
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>".encode())
        types.append(TOKEN_BYTE)
    scores = [0.0] * len(tokens)
    pieces = ["\u2581", *(chr(c) for c in range(33, 127))]
    pieces += list(_WORDS) + ["\u2581" + w for w in _WORDS]
    seen = set(tokens)
    for piece in pieces:
        if piece.encode() in seen:  # llama.cpp aborts on a duplicate piece
            continue
        seen.add(piece.encode())
        tokens.append(piece.encode())
        types.append(TOKEN_NORMAL)
        scores.append(-float(len(piece)) if len(piece) == 1 else float(len(piece)))
    return tokens, scores, types


def build(outdir: Path) -> Path:
    """Write the tiny model into `outdir`; returns its path."""
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.fixtures import gemma4

    outdir.mkdir(parents=True, exist_ok=True)
    target = outdir / MODEL_FILE
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    original = gemma4.gemma4_vocab
    gemma4.gemma4_vocab = tiny_vocab  # the fixture's writer, only with the small vocabulary
    try:
        gemma4.write_model(tmp)
        os.replace(tmp, target)
    finally:
        gemma4.gemma4_vocab = original
        tmp.unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: selftest_model.py OUTDIR", file=sys.stderr)
        raise SystemExit(2)
    print(build(Path(sys.argv[1])))
