"""The entry point: an unknown command and a missing display end in a clear message, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def _headless_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["HOME"] = str(tmp_path)
    return env


def test_an_unknown_command_gets_argparse_error(tmp_path: Path) -> None:
    result = _run(["surely-not-a-command-xyz"], _headless_env(tmp_path))
    assert result.returncode == 2
    assert "invalid choice: 'surely-not-a-command-xyz'" in result.stderr
    assert "chat" in result.stderr  # the known commands are listed
    assert "display" not in result.stderr


def test_no_display_says_so_in_one_line_and_points_to_the_cli(tmp_path: Path) -> None:
    result = _run([], _headless_env(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no display" in lines[0] and "command line" in lines[0]
    assert "libxcb" not in result.stderr


def test_a_known_command_still_runs_without_a_display(tmp_path: Path) -> None:
    result = _run(["--version"], _headless_env(tmp_path))
    assert result.returncode == 0 and result.stdout.strip()
