"""packaging/setup.sh's llama-cpp-python step never hands back a build other than the one asked for.

Both cases run the real script (`--llama-only`) against a throwaway venv and wheel cache: a build
whose CMake configure fails must stop the script, and a cached wheel that lacks the asked-for
backend must be refused; in neither case may `llama-build-args` be written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.3.36"


def _key(args: str) -> str:
    text = f"{VERSION} {args} {tuple(sys.version_info[:2])}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture()
def venv(tmp_path: Path) -> Path:
    """A bare venv of this Python with pip, so the project's .venv is never touched."""
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path


def _setup(venv: Path, wheels: Path, cmake_args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEMMA_VENV": str(venv), "GEMMA_WHEEL_CACHE": str(wheels),
           "CMAKE_ARGS": cmake_args, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return subprocess.run(["bash", str(ROOT / "packaging" / "setup.sh"), "--llama-only"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_a_build_that_fails_stops_setup(venv: Path, tmp_path: Path) -> None:
    # A compiler that does not exist makes CMake's configure fail within seconds.
    args = "-DGGML_NATIVE=OFF -DCMAKE_C_COMPILER=/nonexistent/cc"
    result = _setup(venv, tmp_path / "wheels", args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "CMAKE_C_COMPILER" in output or "CMake" in output, output[-3000:]
    assert not (venv / "llama-build-args").exists()
    assert not list((tmp_path / "wheels").rglob("*.whl"))
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import llama_cpp"],
                           capture_output=True, timeout=60)
    assert probe.returncode != 0, "a llama_cpp was installed although the build failed"


def test_a_cached_wheel_without_the_backend_is_refused(venv: Path, tmp_path: Path) -> None:
    # The project's own wheel has no CUDA module: filed under a CUDA key it must be refused.
    installed = Path(__import__("llama_cpp").__file__).parent
    assert not list(installed.parent.rglob("libggml-cuda*"))
    args = "-DGGML_NATIVE=OFF -DGGML_CUDA=ON"
    cpu_wheel = _any_cached_wheel()
    slot = tmp_path / "wheels" / _key(args)
    slot.mkdir(parents=True)
    shutil.copy(cpu_wheel, slot / cpu_wheel.name)
    result = _setup(venv, tmp_path / "wheels", args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "no cuda backend" in output, output[-3000:]
    assert not (venv / "llama-build-args").exists()


def _any_cached_wheel() -> Path:
    cache = Path(os.environ.get("GEMMA_WHEEL_CACHE", Path.home() / ".cache/gemma-desktop/wheels"))
    wheels = sorted(cache.rglob(f"llama_cpp_python-{VERSION}-*.whl"))
    assert wheels, f"setup.sh left no wheel in {cache}"
    return wheels[0]
