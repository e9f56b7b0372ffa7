"""GPU layers on "auto": an unreadable model header fails clearly instead of offloading everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.engine.autofit import auto_gpu_layers
from app.core.engine.records import EngineError
from tests.fixtures.gemma4 import synthetic_gemma4


@pytest.mark.parametrize("content", [b"", b"not a gguf at all" * 100, "truncated"])
def test_an_unreadable_header_is_a_clear_load_error(tmp_path: Path, content: bytes | str):
    model = tmp_path / "broken.gguf"
    if content == "truncated":
        content = synthetic_gemma4()["model"].read_bytes()[:4096]
    assert isinstance(content, bytes)
    model.write_bytes(content)
    with pytest.raises(EngineError, match="Could not read the model header of broken.gguf"):
        auto_gpu_layers(str(model), 512, None)


def test_a_readable_model_gets_a_layer_count_and_a_broken_projector_is_left_out(tmp_path: Path):
    files = synthetic_gemma4()
    bad_projector = tmp_path / "mmproj.gguf"
    bad_projector.write_bytes(b"GGUF")
    with_projector, moe = auto_gpu_layers(str(files["model"]), 512, str(files["mmproj"]))
    without, _ = auto_gpu_layers(str(files["model"]), 512, str(bad_projector))
    assert isinstance(with_projector, int) and with_projector >= -1 and moe == 0  # dense model
    assert isinstance(without, int) and without >= -1
