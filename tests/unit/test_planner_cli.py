"""`main.py models ...` and `main.py doctor` run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEMMA_DESKTOP_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_recommend_for_a_hypothetical_machine(private_folders: Path):
    done = run("models", "recommend", "--vram-gib", "12", "--ram-gib", "32", "--json",
               home=private_folders)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["model_id"] == "26B-A4B-Q4_K_M" and plan["badge"] == "partial"
    assert plan["repo_id"] == "ggml-org/gemma-4-26B-A4B-it-GGUF"
    assert plan["mmproj"] == "mmproj-gemma-4-26B-A4B-it-bf16.gguf"
    assert plan["options"] == {"flash_attn": True, "swa_full": False, "n_ubatch": 512,
                               "n_batch": 512}
    assert plan["estimate"]["gpu_bytes"] <= 12 * 1024**3
    assert plan["explanation"].startswith("26B-A4B Q4_K_M, 8k context, ")


def test_recommend_nothing_fits_exits_non_zero(private_folders: Path):
    done = run("models", "recommend", "--ram-gib", "2", home=private_folders)
    assert done.returncode == 1
    assert "No Gemma 4 model fits" in done.stdout


def test_list_shows_every_entry_with_a_badge(private_folders: Path):
    done = run("models", "list", "--json", "--vram-gib", "24", "--ram-gib", "32",
               home=private_folders)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["models"]
    assert [r["id"] for r in rows][:3] == ["E2B-Q8_0", "E4B-Q8_0", "E4B-Q4_K_M"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["31B-Q4_K_M"]["recommended"] and by_id["31B-Q4_K_M"]["badge"] == "full_gpu"
    assert by_id["31B-Q8_0"]["badge"] == "partial"
    assert not any(r["installed"] for r in rows)


def test_unknown_model_id_is_a_clear_error(private_folders: Path):
    done = run("models", "download", "E9B-Q1", home=private_folders)
    assert done.returncode == 2
    assert "No model 'E9B-Q1' in the catalog. Known ids: E2B-Q8_0" in done.stderr


def test_doctor_reports_devices_versions_and_folders(private_folders: Path):
    done = run("doctor", "--json", home=private_folders)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert any(d["kind"] == "cpu" for d in data["devices"])
    assert data["gpu_offload"] is False and data["warning"] is None
    assert data["versions"]["llama-cpp-python"] == "0.3.36"
    assert data["folders"]["models"] == str(private_folders / "models")
    text = run("doctor", home=private_folders)
    assert "GPU offload in this llama.cpp build: no" in text.stdout
