"""`python main.py tokenize`: the exact tokens the engine would feed for a conversation."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def run_tokenize(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="main.py tokenize",
                                description="Show the tokens a conversation's prompt is made of.")
    p.add_argument("--model", required=True, help="path of a .gguf model file")
    p.add_argument("--messages", type=Path, required=True,
                   help="JSON file with OpenAI-style messages ([{\"role\", \"content\"}, …])")
    p.add_argument("--think", action="store_true", help="render the prompt with thinking on")
    p.add_argument("--json", action="store_true", help="a JSON list of {id, piece, special}")
    args = p.parse_args(argv)
    try:
        messages = json.loads(args.messages.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        p.error(f"--messages: {exc}")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        p.error("--messages must hold a JSON list of message objects")

    from app.core.engine.blocking import BlockingEngine
    from app.core.engine.messages import LoadModel
    from app.core.engine.records import EngineError

    with BlockingEngine() as engine:
        try:
            engine.start()
            engine.load(LoadModel(str(args.model), n_ctx=512, n_gpu_layers=0))
            tokens = engine.tokenize(messages, args.think)
        except EngineError as exc:
            sys.stderr.write(f"error: {exc.message}\n")
            return 1
    if args.json:
        print(json.dumps([asdict(t) for t in tokens], ensure_ascii=False))
    else:
        for t in tokens:
            print(f"{t.id:>7}  {t.piece!r}{'  (control)' if t.special else ''}")
    return 0
