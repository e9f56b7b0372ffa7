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


def test_services_import_no_widgets():
    # Services run work and hold state; drawing belongs to app.ui (import-linter cannot express this).
    import ast

    offenders = []
    for path in sorted((ROOT / "app" / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("PySide6.QtWidgets")]
    assert not offenders
