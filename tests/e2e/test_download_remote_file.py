"""RemoteRangeFile over the local hub, and the real 270M GGUF served, downloaded and verified."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from app.core.download import (
    AuthRequiredError,
    Downloader,
    HubClient,
    ModelStore,
    RemoteRangeFile,
    RetryPolicy,
    save_token,
)
from tests.fixtures.hub_server import LocalHub, local_hub, random_file  # noqa: F401


def test_random_reads_match_the_file_with_few_requests(local_hub: LocalHub, tmp_path: Path):  # noqa: F811
    src = random_file(tmp_path / "src" / "m.gguf", 5_000_003, seed=3)
    local_hub.add_repo("org/r", {"m.gguf": src})
    data = src.read_bytes()
    f = RemoteRangeFile.from_hub(
        "org/r", "m.gguf", hub=HubClient(local_hub.endpoint), block_size=1 << 16
    )
    assert f.size == len(data)
    rng = random.Random(0)
    for _ in range(200):
        pos = rng.randrange(len(data))
        n = rng.randrange(1, 200_000)
        f.seek(pos)
        assert f.read(n) == data[pos : pos + n]
        assert f.tell() == min(pos + n, len(data))
    f.seek(-10, 2)
    assert f.read() == data[-10:]
    assert f.read(5) == b""
    # Many tiny sequential reads (how a GGUF header is parsed) reuse cached blocks.
    before = f.requests_made
    f.seek(0)
    for _ in range(5000):
        f.read(13)
    assert f.requests_made - before <= 2


def test_range_reads_retry_after_a_drop(local_hub: LocalHub, tmp_path: Path):  # noqa: F811
    src = random_file(tmp_path / "src" / "m.gguf", 300_000, seed=4)
    local_hub.add_repo("org/r", {"m.gguf": src})
    local_hub.add_fault("m.gguf", drop_after=1000)
    f = RemoteRangeFile(local_hub.endpoint + "/org/r/resolve/main/m.gguf")  # size probed
    assert f.size == 300_000
    assert f.read(100_000) == src.read_bytes()[:100_000]


def test_gated_remote_header_needs_the_token(local_hub: LocalHub):  # noqa: F811
    local_hub.add_repo("google/g", {"m.gguf": b"GGUF" + b"\1" * 100}, gated=True)
    with pytest.raises(AuthRequiredError):
        RemoteRangeFile.from_hub("google/g", "m.gguf", hub=HubClient(local_hub.endpoint))
    save_token(local_hub.token)
    f = RemoteRangeFile.from_hub("google/g", "m.gguf", hub=HubClient(local_hub.endpoint))
    assert f.read(4) == b"GGUF"


@pytest.mark.slow
def test_real_270m_gguf_header_remotely_then_full_verified_download(
    local_hub: LocalHub, model_270m: Path, tmp_path: Path  # noqa: F811
):
    local_hub.add_repo("ggml-org/gemma-3-270m-GGUF", {"gemma-3-270m-Q4_K_M.gguf": model_270m})
    hub = HubClient(local_hub.endpoint)
    header = RemoteRangeFile.from_hub("ggml-org/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf", hub=hub)
    magic, version, n_tensors, n_kv = struct.unpack("<4sIQQ", header.read(24))
    assert magic == b"GGUF" and version == 3 and n_tensors > 100 and n_kv > 10
    key_len = struct.unpack("<Q", header.read(8))[0]
    assert header.read(key_len).startswith(b"general.")
    assert header.requests_made <= 2

    store = ModelStore(tmp_path / "models", Downloader(hub, RetryPolicy(backoff_s=0.05)))
    header_bytes = local_hub.bytes_served()
    local_hub.add_fault("gemma-3-270m-Q4_K_M.gguf", drop_after=100_000_000)
    path = store.download("ggml-org/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf")
    entry = store.find("ggml-org/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf")
    assert entry is not None
    assert entry.sha256 == local_hub.sha256("ggml-org/gemma-3-270m-GGUF", "gemma-3-270m-Q4_K_M.gguf")
    assert path.stat().st_size == model_270m.stat().st_size
    downloaded = local_hub.bytes_served() - header_bytes
    assert downloaded == model_270m.stat().st_size  # the drop cost no byte twice
