"""`python main.py chat`: one prompt, streamed to stdout, through the same engine host and client as the GUI."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py chat", description="Chat with a local GGUF model from the shell.")
    p.add_argument("--model", required=True, help="path of a .gguf model file")
    p.add_argument("--prompt", required=True, help="what to ask")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--think", action="store_true", help="let the model think first (Gemma 4)")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ctx", type=int, default=8192, help="context length in tokens")
    p.add_argument("--n-gpu-layers", type=int, default=None,
                   help="layers on the GPU (-1: all; default: as many as fit in free memory)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--grammar", type=Path, default=None, help="GBNF grammar file constraining the output")
    p.add_argument("--image", type=Path, action="append", default=[], help="attach an image (repeatable)")
    p.add_argument("--audio", type=Path, action="append", default=[], help="attach an audio clip (repeatable)")
    p.add_argument("--mmproj", type=Path, default=None, help="projector file for images/audio")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    return p


def build_messages(args: argparse.Namespace) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    if args.image or args.audio:
        parts: list[dict[str, Any]] = [{"type": "image", "path": str(p.resolve())} for p in args.image]
        parts += [{"type": "audio", "path": str(p.resolve())} for p in args.audio]
        parts.append({"type": "text", "text": args.prompt})
        messages.append({"role": "user", "content": parts})
    else:
        messages.append({"role": "user", "content": args.prompt})
    return messages


def run_chat(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from PySide6.QtCore import QCoreApplication, QTimer

    from app.core.engine.media_files import find_projector
    from app.services.engine_client import EngineClient

    app = QCoreApplication.instance() or QCoreApplication([sys.argv[0]])
    client = EngineClient()
    result = {"code": 0}
    emit_json = args.json

    def out(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def fail(message: str) -> None:
        if emit_json:
            out({"event": "error", "message": message})
        else:
            sys.stderr.write(f"error: {message}\n")
        result["code"] = 1
        QTimer.singleShot(0, app.quit)

    shown_thinking = {"open": False}

    def on_delta(kind: str, text: str) -> None:
        if emit_json:
            out({"event": kind, "text": text})
        elif kind == "thinking":
            if not shown_thinking["open"]:
                sys.stderr.write("[thinking] ")
                shown_thinking["open"] = True
            sys.stderr.write(text)
            sys.stderr.flush()
        else:
            if shown_thinking["open"]:
                sys.stderr.write("\n")
                shown_thinking["open"] = False
            sys.stdout.write(text)
            sys.stdout.flush()

    def on_finished(stats: dict[str, Any]) -> None:
        keep = ("prompt_tokens", "completion_tokens", "cached_tokens", "ttft_ms", "decode_tok_s", "stopped", "finish_reason")
        if emit_json:
            out({"event": "done", "stats": {k: stats.get(k) for k in keep}})
        else:
            sys.stdout.write("\n")
            sys.stderr.write(
                f"[{stats.get('completion_tokens', 0)} tokens, {stats.get('decode_tok_s', 0):.1f} tok/s, "
                f"first token after {stats.get('ttft_ms', 0):.0f} ms]\n"
            )
        QTimer.singleShot(0, app.quit)

    def on_loaded(info: dict[str, Any]) -> None:
        if (args.image and not info.get("supports_vision")) or (args.audio and not info.get("supports_audio")):
            what = "images" if args.image and not info.get("supports_vision") else "audio"
            fail(f"This model cannot take {what}: it needs a projector file (mmproj) that supports them. "
                 "Pass --mmproj FILE or download the model's projector.")
            return
        if not info.get("has_template") and not emit_json:
            sys.stderr.write("note: this model has no chat template; using a plain-text prompt.\n")
        params = {
            "temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k, "min_p": args.min_p,
            "max_tokens": args.max_tokens, "seed": args.seed,
        }
        if args.grammar is not None:
            params["grammar"] = args.grammar.read_text()
        client.generate(build_messages(args), args.think, params)

    def on_crash(message: str) -> None:
        fail(message)

    client.sig_delta.connect(on_delta)
    client.sig_finished.connect(on_finished)
    client.sig_failed.connect(fail)
    client.sig_load_failed.connect(fail)
    client.sig_loaded.connect(on_loaded)
    client.sig_engine_crashed.connect(on_crash)

    for media in [*args.image, *args.audio]:
        if not media.is_file():
            fail(f"There is no file at {media}.")
            return 1
    mmproj = args.mmproj
    if mmproj is None and (args.image or args.audio):
        mmproj = find_projector(args.model)
    client.load_model(
        str(args.model), mmproj=str(mmproj) if mmproj else None, n_ctx=args.ctx,
        n_gpu_layers=args.n_gpu_layers, n_threads=args.threads,
    )
    try:
        app.exec()
    finally:
        client.shutdown()
    return int(result["code"])
