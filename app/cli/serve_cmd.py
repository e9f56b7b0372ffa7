"""`python main.py serve`: the loaded model behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.core.engine.messages import DEFAULT_N_CTX

API_KEY_ENV = "GEMMA_DESKTOP_API_KEY"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py serve",
                                description="Serve a model over an OpenAI-compatible API.")
    p.add_argument("--model", default=None,
                   help="a .gguf path, or an installed model's file name or repo/file name")
    p.add_argument("--mmproj", type=Path, default=None, help="projector file for images/audio")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (anything but loopback needs an API key)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free port)")
    p.add_argument("--api-key", default=None,
                   help=f"require this key (Bearer); saved owner-only; or ${API_KEY_ENV}")
    p.add_argument("--parallel", type=int, default=1,
                   help="requests answered at once, decoded together; each gets --ctx / N tokens "
                        "of context (more wait their turn in arrival order)")
    p.add_argument("--ctx", type=int, default=DEFAULT_N_CTX, help="context length in tokens")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n-gpu-layers", type=int, default=None)
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable; off by default)")
    return p


def _resolve_model(name: str | None) -> Path | None:
    from app.core.download.store import ModelStore

    if name and Path(name).is_file():
        return Path(name)
    models = [m for m in ModelStore().installed() if not m.filename.startswith("mmproj")]
    for m in models:
        if name in (m.filename, m.key, Path(m.filename).stem) or (name is None and m is models[0]):
            return Path(m.path)
    return None


def run_serve(argv: list[str]) -> int:
    from app.core.engine.media_files import find_projector
    from app.core.engine.records import EngineError
    from app.server.keys import key_path, load_key, save_key
    from app.server.runner import ServeError, ServeOptions, is_loopback, serve

    args = _parser().parse_args(argv)
    model = _resolve_model(args.model)
    if model is None:
        what = f"no model {args.model!r}" if args.model else "no model installed"
        sys.stderr.write(f"error: {what}. Pass --model PATH.gguf, or an installed model's name "
                         "(main.py models list).\n")
        return 2
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if key and args.api_key:
        save_key(key)
    elif key is None and not is_loopback(args.host):
        key = load_key()
        if key:
            sys.stderr.write(f"note: using the API key saved in {key_path()}\n")
    options = ServeOptions(model, args.mmproj or find_projector(model), args.host, args.port, key,
                           max(1, args.parallel), args.ctx, args.threads, args.n_gpu_layers,
                           list(args.cors))
    try:
        return serve(options)
    except ServeError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except EngineError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 0
