"""`main.py chat --server URL --model NAME`: the same chat, answered by an OpenAI-compatible server."""

from __future__ import annotations

import argparse
import os
from typing import Any

API_KEY_ENV = "GEMMA_DESKTOP_API_KEY"  # so the key need not appear in `ps` or shell history


def _messages(args: argparse.Namespace) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": args.prompt}]
    parts += [{"type": "image", "path": str(p)} for p in args.image]
    parts += [{"type": "audio", "path": str(p)} for p in args.audio]
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    content: Any = parts if len(parts) > 1 else args.prompt
    messages.append({"role": "user", "content": content})
    return messages


def run_remote_chat(args: argparse.Namespace) -> int:
    """One prompt to the server's model, streamed like the local chat (plain text or --json)."""
    from app.cli.chat_cmd import _Printer
    from app.core.engine.records import SamplingParams
    from app.core.remote.client import Endpoint, RemoteChat, RemoteError

    printer = _Printer(args.json)
    if args.prompt is None:
        return printer.error("--server needs --prompt (--turns is for local models).")
    for media in [*args.image, *args.audio]:
        if not media.is_file():
            return printer.error(f"There is no file at {media}.")
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            min_p=args.min_p, max_tokens=args.max_tokens, seed=args.seed,
                            grammar=args.grammar.read_text() if args.grammar else None)
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    with RemoteChat(Endpoint(args.server, key)) as chat:
        try:
            reply = chat.chat(args.model, _messages(args), args.think, params,
                              on_delta=printer.delta)
        except KeyboardInterrupt:
            chat.stop()
            return 130
        except RemoteError as exc:
            return printer.error(exc.message)
    assert reply.stats is not None
    printer.done(reply.stats)
    return 0
