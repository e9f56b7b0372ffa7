"""GGUF header reading (local file and over HTTP ranges) and import validation."""

from __future__ import annotations

import io
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.core.download.hub import HubClient
from app.core.download.remote_file import RemoteRangeFile
from app.core.hardware.gguf_info import GGUFError, read_gguf, read_gguf_path
from app.core.hardware.memory import ModelShape
from app.core.hardware.validate import ValidationError, validate_model, validate_projector
from tests.fixtures.gemma4 import synthetic_gemma4
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401


def test_real_270m_header(model_270m: Path):
    info = read_gguf_path(model_270m)
    assert info.architecture == "gemma3" and info.file_type == "Q4_K_M"
    assert (info.block_count, info.embedding_length, info.context_length) == (18, 640, 32768)
    assert info.head_count_kv == [1] * 18 and info.key_length == 256
    assert info.sliding_window == 512
    # Gemma 3: five local layers then one global, repeating.
    assert info.swa_layers == [il % 6 != 5 for il in range(18)]
    assert info.vocab_size == 262144 and not info.has_chat_template
    # Header + every tensor's bytes is exactly the file: tensor sizes are computed right.
    assert info.header_bytes + info.total_tensor_bytes == model_270m.stat().st_size
    # Tied output: no output.weight, so the output layer is the embedding again.
    assert info.output_bytes == info.tensor_bytes("token_embd.weight") + 640 * 4


def test_synthetic_gemma4_header_and_shape():
    files = synthetic_gemma4()
    info = validate_model(files["model"])
    assert info.architecture == "gemma4"
    assert info.shared_kv_layers == 2
    assert info.swa_layers == [True, True, False, True, False]
    assert (info.key_length, info.key_length_swa) == (32, 16)
    shape = ModelShape.from_gguf(info)
    assert shape.n_layer_kv == 3 and shape.head_k == (16, 16, 32, 16, 32)
    proj = validate_projector(info, files["mmproj"])
    assert proj.is_projector and proj.projector_types & {"gemma4v", "gemma4a"}


def test_header_over_http_ranges_reads_only_the_header(
    local_hub: LocalHub, model_270m: Path  # noqa: F811
):
    local_hub.add_repo("ggml-org/gemma-3-270m-GGUF", {"m.gguf": model_270m})
    remote = RemoteRangeFile.from_hub("ggml-org/gemma-3-270m-GGUF", "m.gguf",
                                      hub=HubClient(local_hub.endpoint))
    info = read_gguf(remote)
    assert info.block_count == 18 and len(info.tensors) == len(read_gguf_path(model_270m).tensors)
    # A 6.5 MB header out of 253 MB: only a few 1 MiB blocks were fetched.
    assert remote.requests_made <= 10


def _write(path: Path, arch: str, extra: dict | None = None) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_embedding_length(32)
    for k, v in (extra or {}).items():
        w.add_string(k, v) if isinstance(v, str) else w.add_uint32(k, v)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((32, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bad_files_are_refused_with_plain_messages(tmp_path: Path, model_270m: Path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello, this is not a model")
    with pytest.raises(ValidationError, match="not a GGUF file"):
        validate_model(text)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(model_270m.read_bytes()[:3_000_000])
    with pytest.raises(ValidationError, match="truncated|ends inside its header"):
        validate_model(truncated)
    half = tmp_path / "half.gguf"
    half.write_bytes(model_270m.read_bytes()[:100_000_000])
    with pytest.raises(ValidationError, match=r"truncated \(100,000,000 of 253,113,024 bytes\)"):
        validate_model(half)
    alien = _write(tmp_path / "alien.gguf", "spacemodel")
    with pytest.raises(ValidationError, match="'spacemodel' model, which the installed llama.cpp"):
        validate_model(alien)
    with pytest.raises(ValidationError, match="does not exist"):
        validate_model(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError):
        read_gguf(io.BytesIO(b""))


def test_projector_must_match_family_and_width(tmp_path: Path, model_270m: Path):
    model = read_gguf_path(model_270m)  # gemma3, width 640
    files = synthetic_gemma4()
    with pytest.raises(ValidationError, match="does not fit a 'gemma3' model"):
        validate_projector(model, files["mmproj"])
    wrong_width = _write(tmp_path / "mmproj-x.gguf", "clip",
                         {"clip.projector_type": "gemma3", "clip.vision.projection_dim": 2560})
    with pytest.raises(ValidationError, match="outputs width 2560 but the model expects 640"):
        validate_projector(model, wrong_width)
    with pytest.raises(ValidationError, match="not a projector"):
        validate_projector(model, model_270m)
    with pytest.raises(ValidationError, match="is a vision/audio projector"):
        validate_model(files["mmproj"])
