"""Start the engine, load the model, and serve the API with uvicorn until interrupted."""

from __future__ import annotations

import ipaddress
import shutil
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from app.server.app import ServedModel, ServerConfig, create_app
from app.server.engine_port import ConnectionEngine


class ServeError(Exception):
    """The server cannot start as asked; the message says why and what to do."""


@dataclass
class ServeOptions:
    model: Path
    mmproj: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    parallel: int = 1
    n_ctx: int = 8192
    threads: int | None = None
    n_gpu_layers: int | None = None
    cors_origins: list[str] = field(default_factory=list)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Any address but loopback is reachable by other machines: only with a key."""
    if not is_loopback(host) and not api_key:
        raise ServeError(f"Serving on {host} lets other devices connect: an API key is required "
                         "(--api-key KEY, or $GEMMA_DESKTOP_API_KEY).")


def installed_models() -> list[ServedModel]:
    from app.core.download.store import ModelStore

    return [ServedModel(m.filename, m.path, m.key) for m in ModelStore().installed()]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions) -> int:
    """Blocks until Ctrl+C / SIGTERM; prints one line with the URL once the model is loaded."""
    import uvicorn

    from app.core import paths
    from app.core.engine.messages import LoadModel

    check_exposure(options.host, options.api_key)
    sock = _bind(options.host, options.port)  # before loading: a busy port fails fast
    # uvicorn answers SIGTERM with a graceful shutdown, then raises the signal again for the
    # handler it found. Python's default ends the process there, before the cleanup below, and
    # the engine host would run on alone until it noticed. This handler unwinds instead.
    previous = (signal.signal(signal.SIGTERM, _exit_on_sigterm)
                if threading.current_thread() is threading.main_thread() else None)
    engine = ConnectionEngine(log_path=paths.log_dir() / "engine.log")
    try:
        info = engine.start(LoadModel(str(options.model), str(options.mmproj) if options.mmproj
                                      else None, options.n_ctx, options.n_gpu_layers,
                                      options.threads, n_parallel=max(1, options.parallel)))
        config = ServerConfig(media_dir=paths.cache_dir() / "server-media",
                              api_key=options.api_key, cors_origins=options.cors_origins,
                              installed=installed_models)
        api = create_app(engine, config)
        port = sock.getsockname()[1]
        shown = f"[{options.host}]" if ":" in options.host else options.host
        at_once = (f", {options.parallel} requests at once, {info.n_ctx:,} tokens of context each"
                   if options.parallel > 1 else "")
        print(f"Serving {Path(info.path).name} on http://{shown}:{port}/v1{at_once}", flush=True)
        server = uvicorn.Server(uvicorn.Config(api, log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=2))
        server.run(sockets=[sock])
    finally:
        sock.close()
        engine.close()  # waits until the engine host is gone
        shutil.rmtree(paths.cache_dir() / "server-media", ignore_errors=True)  # clients' media
        sys.stdout.flush()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
