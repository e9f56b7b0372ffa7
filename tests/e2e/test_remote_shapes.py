"""Model shapes from GGUF headers read over HTTP ranges before download, cached for offline plans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.core.catalog import load_catalog
from app.core.hardware.gguf_info import read_gguf_path
from app.core.hardware.memory import ModelShape
from app.core.hardware.planner import catalog_candidates
from app.core.hardware.shapes import cached_shapes, refresh_shapes
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
REPO = "ggml-org/gemma-4-E2B-it-GGUF"
FILE = "gemma-4-E2B-it-Q8_0.gguf"
PROJ = "mmproj-gemma-4-E2B-it-bf16.gguf"


def test_headers_are_read_remotely_cached_and_used_by_the_planner(monkeypatch, local_hub: LocalHub):  # noqa: F811
    files = synthetic_gemma4()
    local_hub.add_repo(REPO, {FILE: files["model"], PROJ: files["mmproj"]})
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    entry = next(e for e in load_catalog().entries() if e.repo.repo_id == REPO and e.file.filename == FILE)

    shapes = refresh_shapes([entry])
    expected = ModelShape.from_gguf(read_gguf_path(files["model"]), read_gguf_path(files["mmproj"]),
                                    file_bytes=entry.file.size)
    assert shapes[entry.id] == expected
    assert not expected.approximate
    # Only the header travelled, not the weights.
    assert local_hub.bytes_served(FILE) < files["model"].stat().st_size / 2

    # Offline later: the cached shape is what the planner uses instead of the catalog's estimate.
    assert cached_shapes()[entry.id] == expected
    cand = next(c for c in catalog_candidates(load_catalog(), headers=cached_shapes()) if c.model_id == entry.id)
    assert cand.shape == expected
    approx = next(c for c in catalog_candidates(load_catalog()) if c.model_id == entry.id)
    assert approx.shape.approximate


def test_unreadable_repo_keeps_the_estimate(monkeypatch, local_hub: LocalHub):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)  # the repo is not served: 404
    entry = next(e for e in load_catalog().entries() if e.repo.repo_id == REPO)
    assert entry.id not in refresh_shapes([entry])


def test_cli_refresh_then_list_offline(monkeypatch, local_hub: LocalHub, tmp_path):  # noqa: F811
    files = synthetic_gemma4()
    local_hub.add_repo(REPO, {FILE: files["model"], PROJ: files["mmproj"]})
    env = {**__import__("os").environ, "HF_ENDPOINT": local_hub.endpoint}
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "models", "refresh"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "headers read for" in r.stdout
    env["HF_HUB_OFFLINE"] = "1"
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "models", "list", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["id"]: row for row in json.loads(r.stdout)["models"]}
    entry_id = next(e.id for e in load_catalog().entries() if e.repo.repo_id == REPO and e.file.filename == FILE)
    # The tiny synthetic header makes this entry's memory need far below the catalog's E2B estimate.
    assert rows[entry_id]["memory_bytes_8k"] < 2 * 1024**3
