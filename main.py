"""Gemma Desktop entry point: the window, the engine host (--engine-host) or the CLI."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from app.bootstrap import main

    sys.exit(main(sys.argv[1:]))
