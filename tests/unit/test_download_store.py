"""ModelStore bookkeeping, hashing and token storage: real files in tmp_path, no network."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from app.core import paths
from app.core.download import (
    DiskSpaceError,
    DownloadError,
    ModelStore,
    get_token,
    save_token,
    sha256_file,
    verify_file,
)
from app.core.download.errors import ChecksumError
from app.core.download.fetch import Downloader


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_default_root_is_the_models_folder():
    assert ModelStore().root == paths.models_dir()


def test_sha256_file_matches_hashlib_across_block_boundaries(tmp_path: Path):
    data = os.urandom((8 << 20) + 3)
    path = write(tmp_path / "x.bin", data)
    seen: list[int] = []
    assert sha256_file(path, lambda done, total: seen.append(done)) == hashlib.sha256(data).hexdigest()
    assert seen[-1] == len(data)


def test_verify_file_deletes_a_mismatch(tmp_path: Path):
    path = write(tmp_path / "x.gguf", b"abc")
    verify_file(path, hashlib.sha256(b"abc").hexdigest())
    with pytest.raises(ChecksumError, match="deleted"):
        verify_file(path, "0" * 64)
    assert not path.exists()


def test_import_local_copy_hashes_and_records(tmp_path: Path):
    src = write(tmp_path / "in" / "my-model.gguf", b"GGUF" + os.urandom(100_000))
    store = ModelStore(tmp_path / "models")
    entry = store.import_local(src)
    assert Path(entry.path).read_bytes() == src.read_bytes()
    assert Path(entry.path).parent == store.root / "local"
    assert entry.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert store.installed() == [entry]
    # A new store over the same folder sees the same manifest.
    assert ModelStore(tmp_path / "models").find("local", "my-model.gguf") == entry


def test_import_by_reference_is_forgotten_not_deleted(tmp_path: Path):
    src = write(tmp_path / "in" / "big.gguf", b"GGUF" + b"\0" * 1000)
    store = ModelStore(tmp_path / "models")
    entry = store.import_local(src, copy=False)
    assert entry.by_reference and Path(entry.path) == src.resolve()
    store.remove("local", "big.gguf")
    assert src.exists() and store.installed() == []


def test_validator_refuses_before_any_copy(tmp_path: Path):
    src = write(tmp_path / "in" / "bad.gguf", b"not a gguf")

    def validate(path: Path) -> None:
        raise DownloadError(f"{path.name} is not a GGUF model file.")

    store = ModelStore(tmp_path / "models")
    with pytest.raises(DownloadError, match="not a GGUF"):
        store.import_local(src, validate=validate)
    assert store.installed() == [] and not (store.root / "local").exists()


def test_import_checks_disk_space(tmp_path: Path):
    src = write(tmp_path / "in" / "m.gguf", b"x" * 1000)
    store = ModelStore(tmp_path / "models", Downloader(free_space=lambda _p: 10))
    with pytest.raises(DiskSpaceError, match="Not enough free disk space"):
        store.import_local(src)


def test_remove_deletes_file_partials_and_manifest_row(tmp_path: Path):
    store = ModelStore(tmp_path / "models")
    dest = write(store.path_for("org/repo", "m.gguf"), b"data")
    write(dest.with_name("m.gguf.part"), b"da")
    write(dest.with_name("m.gguf.part.json"), b"{}")
    store.remove("org/repo", "m.gguf")
    assert not dest.parent.exists()


def test_manifest_survives_unknown_rows_and_missing_files(tmp_path: Path):
    store = ModelStore(tmp_path / "models")
    src = write(tmp_path / "in" / "a.gguf", b"a")
    store.import_local(src)
    manifest = store.root / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"].append({"repo_id": "x", "filename": "y", "weird": 1})
    data["files"].append({**data["files"][0], "filename": "gone.gguf", "path": "/nonexistent"})
    manifest.write_text(json.dumps(data))
    assert [m.filename for m in store.installed()] == ["a.gguf"]
    assert not list(store.root.glob("*.tmp"))


def test_token_is_stored_where_huggingface_hub_reads_it(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert get_token() is None
    path = save_token("hf_abc\n")
    assert path == Path(os.environ["HF_HOME"]) / "token"
    assert path.read_text() == "hf_abc" and (path.stat().st_mode & 0o777) == 0o600
    assert get_token() == "hf_abc"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert get_token() == "hf_env"
