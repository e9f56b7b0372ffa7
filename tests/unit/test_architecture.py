"""House rules that code review alone would let slip: layering, no Qt in core, strict typing of core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_import_contracts_hold():
    # ui -> services -> core only, and app.core never imports Qt (contracts in pyproject.toml).
    r = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_core_is_strictly_typed():
    r = subprocess.run([sys.executable, "-m", "mypy", "app/core"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-4000:]


def test_lint_is_clean():
    r = subprocess.run([str(BIN / "ruff"), "check", "app", "tests", "benchmarks", "packaging", "main.py"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]
