"""ggml's Vulkan module on a real Vulkan device: Mesa's lavapipe (mesa-vulkan-drivers).

lavapipe is a CPU-type device, so ggml uses it only when GGML_VK_VISIBLE_DEVICES names it; users
never get it in place of the CPU backend unasked. Needs setup.sh's default Linux build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _doctor(**env: str) -> dict[str, Any]:
    run_env = {k: v for k, v in os.environ.items() if k != "GGML_VK_VISIBLE_DEVICES"}
    result = subprocess.run([sys.executable, "main.py", "doctor", "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, env={**run_env, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _vulkan_module(data: dict[str, Any]) -> dict[str, Any]:
    modules = {m["name"]: m for m in data["backends"]["modules"]}
    assert "vulkan" in modules, f"no Vulkan module in this build: {sorted(modules)}"
    return modules["vulkan"]


def test_doctor_lists_lavapipe_with_its_memory_when_asked() -> None:
    data = _doctor(GGML_VK_VISIBLE_DEVICES="0")
    assert _vulkan_module(data)["loaded"]
    (vk,) = [d for d in data["devices"] if d["name"] == "Vulkan0"]
    assert "llvmpipe" in vk["description"]
    assert 0 < vk["free_bytes"] <= vk["total_bytes"]
    assert data["gpu_offload"] is True


def test_a_cpu_type_vulkan_device_is_never_used_unasked() -> None:
    data = _doctor()
    assert not [d for d in data["devices"] if d["name"].startswith("Vulkan")]
    assert "GGML_VK_VISIBLE_DEVICES" in _vulkan_module(data)["reason"]


def test_without_a_vulkan_driver_the_cpu_runs_and_doctor_says_why() -> None:
    data = _doctor(GGML_VK_VISIBLE_DEVICES="0", VK_ICD_FILENAMES="/nonexistent")
    vulkan = _vulkan_module(data)
    assert vulkan["reason"] == "no Vulkan driver", vulkan
    assert [d["name"] for d in data["devices"]] == ["CPU"]
    assert data["backends"]["cpu_variant"] not in ("", "none", "built-in")
