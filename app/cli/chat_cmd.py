"""`python main.py chat`: a prompt (or a file of turns) streamed to stdout through the engine host.

A conversation of several turns (`--turns FILE.json`) runs exactly as the window runs one: each
turn is stored in a chat history (a temporary one), the prompt is built from it the same way, and
all turns go to one engine, so the prompt cache is used as in the window (`--no-prompt-cache`
answers each turn from a fresh context instead, for checking that the cache changes nothing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.core.engine.backends import parse_gpu_layers
from app.core.engine.messages import DEFAULT_N_CTX
from app.core.engine.records import SamplingParams


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py chat", description="Chat with a local GGUF model from the shell.")
    p.add_argument("--model", required=True, help="path of a .gguf model file")
    p.add_argument("--prompt", help="what to ask")
    p.add_argument("--turns", type=Path, default=None,
                   help='JSON list of user turns, each a string or {"text", "image"?, "audio"?}')
    p.add_argument("--no-prompt-cache", action="store_true",
                   help="answer every turn from a fresh context (no prompt-cache reuse)")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--think", action="store_true", help="let the model think first (Gemma 4)")
    gemma = SamplingParams()
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=gemma.temperature)
    p.add_argument("--top-p", type=float, default=gemma.top_p)
    p.add_argument("--top-k", type=int, default=gemma.top_k)
    p.add_argument("--min-p", type=float, default=gemma.min_p)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ctx", type=int, default=DEFAULT_N_CTX, help="context length in tokens")
    p.add_argument("--gpu-layers", "--n-gpu-layers", dest="n_gpu_layers", type=parse_gpu_layers,
                   default=None, help="layers on the GPU: auto (as many as fit), all, or N (0: CPU)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--grammar", type=Path, default=None, help="GBNF grammar file constraining the output")
    p.add_argument("--image", type=Path, action="append", default=[], help="attach an image (repeatable)")
    p.add_argument("--audio", type=Path, action="append", default=[], help="attach an audio clip (repeatable)")
    p.add_argument("--mmproj", type=Path, default=None, help="projector file for images/audio")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--server", default=None,
                   help="base URL of an OpenAI-compatible server; --model then names its model")
    p.add_argument("--api-key", default=None, help="the server's API key (or $GEMMA_DESKTOP_API_KEY)")
    p.add_argument("--mcp-config", type=Path, default=None,
                   help='offer the tools of these MCP servers ({"mcpServers": {…}}) to the model')
    p.add_argument("--allow-tools", action="store_true",
                   help="run the model's tool calls without asking (default: ask at the terminal)")
    p.add_argument("--max-tool-steps", type=int, default=8,
                   help="tool-call rounds the model may make in one turn")
    return p


class _Turn:
    """One user turn: text and attached files."""

    def __init__(self, text: str, images: list[Path], audio: list[Path]) -> None:
        self.text, self.images, self.audio = text, images, audio


def _turns(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[_Turn]:
    if args.turns is None:
        if args.prompt is None:
            parser.error("one of --prompt or --turns is required")
        return [_Turn(args.prompt, list(args.image), list(args.audio))]
    if args.prompt is not None:
        parser.error("--prompt and --turns cannot be used together")
    try:
        data = json.loads(args.turns.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"--turns: {exc}")
    if not isinstance(data, list) or not data:
        parser.error("--turns must hold a non-empty JSON list")
    base = args.turns.resolve().parent
    turns = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict) or not isinstance(item.get("text", ""), str):
            parser.error(f'--turns item {i} is neither a string nor {{"text", "image"?, "audio"?}}')
        image, audio = item.get("image"), item.get("audio")
        turns.append(_Turn(item.get("text", ""), [base / image] if image else [],
                           [base / audio] if audio else []))
    return turns


def _attachment(path: Path, kind: str) -> Any:
    from app.core.storage.records import Attachment

    data = path.read_bytes()
    mime = mimetypes.guess_type(path.name)[0] or ("audio/wav" if kind == "audio" else "image/png")
    return Attachment(kind, path.resolve(), hashlib.sha256(data).hexdigest(), path.name, mime)  # type: ignore[arg-type]


class _Printer:
    """Writes events: plain text (thinking to stderr) or one JSON object per line."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.turn: int | None = None
        self._thinking_open = False

    def out(self, event: dict[str, Any]) -> None:
        if self.turn is not None:
            event["turn"] = self.turn
        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def delta(self, kind: str, text: str) -> None:
        if self.as_json:
            self.out({"event": kind, "text": text})
        elif kind == "thinking":
            if not self._thinking_open:
                sys.stderr.write("[thinking] ")
                self._thinking_open = True
            sys.stderr.write(text)
            sys.stderr.flush()
        elif kind == "tool_call":
            sys.stderr.write(f"\n[tool call] {text}\n")
        else:
            if self._thinking_open:
                sys.stderr.write("\n")
                self._thinking_open = False
            sys.stdout.write(text)
            sys.stdout.flush()

    def done(self, stats: Any) -> None:
        keep = ("prompt_tokens", "completion_tokens", "cached_tokens", "ttft_ms", "decode_tok_s",
                "stopped", "finish_reason", "offload", "cpu_variant")
        if self.as_json:
            self.out({"event": "done", "stats": {k: getattr(stats, k) for k in keep if hasattr(stats, k)}})
        else:
            sys.stdout.write("\n")
            sys.stderr.write(f"[{stats.completion_tokens} tokens, {stats.decode_tok_s:.1f} tok/s, "
                             f"first token after {stats.ttft_ms:.0f} ms]\n")

    def error(self, message: str) -> int:
        if self.as_json:
            self.out({"event": "error", "message": message})
        else:
            sys.stderr.write(f"error: {message}\n")
        return 1


def run_chat(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.server:
        from app.cli.remote_chat import run_remote_chat
        return run_remote_chat(args)
    turns = _turns(args, parser)
    printer = _Printer(args.json)
    for turn in turns:
        for media in [*turn.images, *turn.audio]:
            if not media.is_file():
                return printer.error(f"There is no file at {media}.")
    with tempfile.TemporaryDirectory(prefix="gemma-chat-") as tmp:
        return _converse(args, turns, printer, Path(tmp))


def _converse(args: argparse.Namespace, turns: list[_Turn], printer: _Printer, tmp: Path) -> int:
    from app.core import paths
    from app.core.chat.session import ChatSession
    from app.core.engine.blocking import BlockingEngine
    from app.core.engine.media_files import find_projector
    from app.core.engine.messages import LoadModel
    from app.core.engine.records import EngineError
    from app.core.storage.history import HistoryStore
    from app.core.tools.config import McpConfigError

    wants_images = any(t.images for t in turns)
    wants_audio = any(t.audio for t in turns)
    mmproj = args.mmproj
    if mmproj is None and (wants_images or wants_audio):
        mmproj = find_projector(args.model)
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            min_p=args.min_p, max_tokens=args.max_tokens, seed=args.seed,
                            grammar=args.grammar.read_text() if args.grammar else None)
    store = HistoryStore(tmp / "history.db", tmp / "attachments")
    session = ChatSession(store)
    conversation = store.create_conversation().id
    tools = None
    with BlockingEngine(log_path=paths.log_dir() / "engine.log") as engine:
        try:
            if args.mcp_config is not None:
                from app.cli.chat_tools import CliTools

                tools = CliTools(args.mcp_config, allow_all=args.allow_tools,
                                 emit=printer.out if args.json else None,
                                 max_steps=args.max_tool_steps)
            engine.start()
            info = engine.load(LoadModel(str(args.model), str(mmproj) if mmproj else None,
                                         args.ctx, args.n_gpu_layers, args.threads))
            if (wants_images and not info.supports_vision) or (wants_audio and not info.supports_audio):
                what = "images" if wants_images and not info.supports_vision else "audio"
                return printer.error(
                    f"This model cannot take {what}: it needs a projector file (mmproj) that "
                    "supports them. Pass --mmproj FILE or download the model's projector.")
            if args.json:
                printer.out({"event": "loaded", "model": asdict(info)})
            if not info.has_template and not args.json:
                sys.stderr.write("note: this model has no chat template; using a plain-text prompt.\n")
            for i, turn in enumerate(turns):
                printer.turn = i if args.turns is not None else None
                attachments = [_attachment(p, "image") for p in turn.images]
                attachments += [_attachment(p, "audio") for p in turn.audio]
                _user, placeholder = session.send(conversation, turn.text, attachments, model=info.name)
                messages = session.engine_messages(conversation, placeholder.parent_id, args.system)
                if tools is not None:
                    reply = tools.answer(engine, messages, args.think, params, printer.delta,
                                         cache=not args.no_prompt_cache)
                else:
                    reply = engine.generate(messages, args.think, params,
                                            cache=not args.no_prompt_cache, on_delta=printer.delta)
                assert reply.stats is not None
                status = "stopped" if reply.stats.stopped else "complete"
                session.finish(placeholder.id, reply.answer.strip(), reply.thinking.strip(), status)
                printer.done(reply.stats)
                if reply.stats.stopped:
                    break
        except EngineError as exc:
            return printer.error(exc.message)
        except McpConfigError as exc:
            return printer.error(f"--mcp-config: {exc}")
        finally:
            if tools is not None:
                tools.close()
            store.close()
    return 0
