"""Command-line entry points (`python main.py chat|models|doctor ...`); they share the app's core code."""

from __future__ import annotations

COMMANDS = ("chat", "models", "doctor", "tokenize", "serve", "tools")


def run_cli(argv: list[str]) -> int:
    """Dispatch a CLI command; argv[0] is the command name."""
    command, rest = argv[0], argv[1:]
    if command == "chat":
        from app.cli.chat_cmd import run_chat

        return run_chat(rest)
    if command == "models":
        from app.cli.models_cmd import run_models

        return run_models(rest)
    if command == "tokenize":
        from app.cli.tokenize_cmd import run_tokenize

        return run_tokenize(rest)
    if command == "serve":
        from app.cli.serve_cmd import run_serve

        return run_serve(rest)
    if command == "tools":
        from app.cli.tools_cmd import run_tools

        return run_tools(rest)
    if command == "doctor":
        from app.cli.models_cmd import run_doctor

        return run_doctor(rest)
    raise SystemExit(f"unknown command {command!r}")
