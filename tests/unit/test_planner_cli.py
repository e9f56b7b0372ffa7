"""`main.py models ...` and `main.py doctor` run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.gemma4 import synthetic_gemma4

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
    # The pick depends on this machine's measured CPU speed: check the rule, not a name.
    assert plan["repo_id"] == f"ggml-org/gemma-4-{plan['variant']}-it-GGUF"
    assert plan["mmproj"] == f"mmproj-gemma-4-{plan['variant']}-it-bf16.gguf"
    assert plan["options"] == {"flash_attn": True, "swa_full": False, "n_ubatch": 512,
                               "n_batch": 512, "kv_type": "f16"}
    assert plan["estimate"]["gpu_bytes"] <= 12 * 1024**3
    # The speed-aware pick: the strongest that meets the floor, with what it weighed.
    assert plan["predicted_decode_tok_s"] >= plan["floor_tok_s"] == 8.0
    assert plan["explanation"].startswith(f"{plan['variant']} {plan['quant']}: ≈ ")
    weighed = {(a["variant"], a["quant"]): a["predicted_decode_tok_s"]
               for a in plan["alternatives"]}
    weighed[(plan["variant"], plan["quant"])] = plan["predicted_decode_tok_s"]
    assert weighed[("E4B", "Q4_K_M")] > weighed[("E4B", "Q8_0")] > 0
    # Nothing stronger than the pick was predicted to meet the floor.
    order = ["E2B", "E4B", "26B-A4B", "31B"]
    quants = ["Q4_K_M", "Q8_0"]
    mine = (order.index(plan["variant"]), quants.index(plan["quant"]))
    for (variant, quant), tok_s in weighed.items():
        if variant in order and (order.index(variant), quants.index(quant)) > mine:
            assert tok_s < 8.0, (variant, quant, tok_s)
    assert plan["model_id"] not in {a["model_id"] for a in plan["alternatives"]}


def test_recommend_with_a_floor_nothing_meets_says_it_will_be_slow(private_folders: Path):
    done = run("models", "recommend", "--ram-gib", "32", "--floor", "100000", "--json",
               home=private_folders)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    fastest = max(a["predicted_decode_tok_s"] for a in plan["alternatives"])
    assert plan["predicted_decode_tok_s"] >= fastest
    assert "will be slow on this machine" in plan["explanation"]


def test_plan_a_local_gguf(private_folders: Path):
    model = synthetic_gemma4()["model"]
    done = run("models", "plan", str(model), "--ctx", "4096", "--json", "--ram-gib", "8",
               home=private_folders)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["fits"] and plan["n_ctx"] == 4096 and plan["badge"] == "cpu_only"
    assert plan["memory"]["gpu"]["total"] == 0 and plan["memory"]["cpu"]["weights"] > 0
    assert plan["predicted_decode_tok_s"] > 0
    gpu = json.loads(run("models", "plan", str(model), "--vram-gib", "4", "--ram-gib", "8",
                         "--gpu-layers", "all", "--json", home=private_folders).stdout)
    assert gpu["badge"] == "full_gpu" and gpu["layers_on_gpu"] == gpu["n_layer"]
    assert gpu["memory"]["gpu"]["weights"] > 0
    assert gpu["predicted_decode_tok_s"] > plan["predicted_decode_tok_s"]
    tiny = run("models", "plan", str(model), "--ram-gib", "0.5", "--json", home=private_folders)
    assert tiny.returncode == 1 and not json.loads(tiny.stdout)["fits"]


def test_recommend_nothing_fits_exits_non_zero(private_folders: Path):
    done = run("models", "recommend", "--ram-gib", "2", home=private_folders)
    assert done.returncode == 1
    assert "No Gemma 4 model fits" in done.stdout


def test_list_shows_every_entry_with_a_badge(private_folders: Path):
    done = run("models", "list", "--json", "--vram-gib", "24", "--ram-gib", "32",
               home=private_folders)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["models"]
    official = [r["id"] for r in rows if "/" not in r["id"]]
    assert official[:3] == ["E2B-Q8_0", "E4B-Q8_0", "E4B-Q4_K_M"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["31B-Q4_K_M"]["badge"] == "full_gpu"
    assert by_id["31B-Q8_0"]["badge"] == "partial"
    assert by_id["E4B-Q4_K_M"]["predicted_decode_tok_s"] > by_id["E4B-Q8_0"]["predicted_decode_tok_s"]
    # One pick, and never a repo whose files are guesses.
    picked = [r for r in rows if r["recommended"]]
    assert len(picked) == 1 and picked[0]["verified"]
    assert not by_id["12B-Q4_K_M"]["verified"]
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
