"""Model files before and after llama.cpp reads them: a quick check, and failures in plain words."""

from __future__ import annotations

from pathlib import Path

from app.core.engine.records import EngineError
from app.core.hardware.gguf_info import GGUF_MAGIC


def check_gguf_file(path: str) -> None:
    """Refuse what is clearly not a loadable GGUF before llama.cpp sees it."""
    p = Path(path)
    if not p.is_file():
        raise EngineError("load", f"There is no model file at {path}.")
    with p.open("rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise EngineError(
            "load",
            f"{p.name} is not a GGUF model file. Choose a .gguf file (for example "
            "gemma-4-E4B-it-Q4_K_M.gguf).",
        )


def explain_load_failure(path: str, log_errors: list[str]) -> str:
    """Why llama.cpp could not load `path`, from the errors it logged."""
    name = Path(path).name
    joined = " ".join(log_errors)
    if "unknown model architecture" in joined:
        arch = joined.split("unknown model architecture:", 1)[-1].strip().strip("'").split("'")[0]
        return (
            f"{name} uses the model architecture '{arch}', which this version of llama.cpp cannot run. "
            "Choose a Gemma 4 GGUF."
        )
    if "data is not within the file bounds" in joined or "truncated" in joined or "failed to read" in joined:
        return f"{name} is incomplete or damaged (the file is shorter than its header says). Download it again."
    detail = log_errors[-1] if log_errors else "llama.cpp gave no reason"
    return f"{name} could not be loaded: {detail}"
