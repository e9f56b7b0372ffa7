"""Catalog data, lookups, user repositories and the Hub refresh (through the real local hub)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core import paths
from app.core.catalog import (
    CatalogError,
    add_user_repo,
    builtin_catalog,
    files_from_listing,
    load_catalog,
    quant_of,
    refresh_from_hub,
)
from app.core.download import ModelStore
from app.core.download.fetch import Downloader
from app.core.download.hub import HubClient
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401


def test_five_sizes_official_repos_first_with_documented_sizes():
    c = builtin_catalog()
    assert [v.id for v in c.variants] == ["E2B", "E4B", "12B", "26B-A4B", "31B"]
    for v in c.variants:
        assert v.repos[0].official and v.repos[0].repo_id == f"ggml-org/gemma-4-{v.id}-it-GGUF"
        assert v.repos[0].mmproj, f"{v.id} has no projector"
        assert v.hparams["approximate"] is True
    assert c.entry("E4B-Q4_K_M").file.size == 5_335_289_824
    assert c.entry("31B-Q8_0").file.size == 32_635_674_400
    assert c.variant("E2B").inputs == ("text", "image", "audio")
    assert "audio" not in c.variant("26B-A4B").inputs
    assert c.variant("31B").max_context == 262_144


def test_12b_unified_qat_q4_community_and_drafts_listed_but_unverified_not_recommended():
    c = builtin_catalog()
    twelve = c.variant("12B")
    assert twelve.inputs == ("text", "image", "audio")
    assert twelve.projector_types == ("gemma4uv", "gemma4ua")
    assert twelve.drafts and all(not d.verified for d in twelve.drafts)
    # Every size has a Q4-class file somewhere, and a QAT build from Google.
    for v in c.variants:
        quants = {f.quant for r in v.repos for f in r.files}
        assert quants & {"Q4_K_M", "Q4_0"}, v.id
        assert any(r.repo_id.startswith("google/") and "qat" in r.repo_id for r in v.repos), v.id
    # Guessed file names are listed (the manager shows them) but never recommended.
    unverified = [r for v in c.variants for r in v.repos if not r.verified]
    assert unverified and all("unverified" in r.note for r in unverified)
    recommendable = {e.id for e in c.entries(official_only=True)}
    assert "12B-Q4_K_M" not in recommendable and "E4B-Q4_K_M" in recommendable
    assert "12B-Q4_K_M" in {e.id for e in c.entries()}


def test_a_hub_listing_verifies_a_curated_repo(local_hub: LocalHub, tmp_path: Path):  # noqa: F811
    local_hub.add_repo("unsloth/gemma-4-E2B-it-GGUF", {
        "gemma-4-E2B-it-Q4_K_M.gguf": b"GGUF" + b"\0" * 700,
        "mmproj-BF16.gguf": b"GGUF" + b"\0" * 100,
    })
    store = ModelStore(tmp_path / "models", Downloader(HubClient(local_hub.endpoint)))
    c = refresh_from_hub(store.list_remote_files)
    entry = c.entry("unsloth/gemma-4-E2B-it-GGUF:Q4_K_M")
    assert entry.repo.verified and entry.repo.curated and entry.file.size == 704
    assert entry.id in {e.id for e in c.entries(official_only=True)}


def test_lookups_and_clear_errors():
    c = builtin_catalog()
    assert c.entry("e4b-q8_0").id == "E4B-Q8_0"
    assert c.entry("E4B-Q8_0").mmproj.filename == "mmproj-gemma-4-E4B-it-bf16.gguf"
    assert c.find_by_filename("/x/gemma-4-31B-it-Q4_K_M.gguf").id == "31B-Q4_K_M"
    with pytest.raises(CatalogError, match="Known ids: E2B-Q8_0"):
        c.entry("E9B-Q4_K_M")
    assert c.variant_for_repo("unsloth/gemma-4-E4B-it-GGUF").id == "E4B"


@pytest.mark.parametrize(("name", "quant"), [
    ("gemma-4-E4B-it-Q4_K_M.gguf", "Q4_K_M"), ("gemma-4-E4B-it-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
    ("mmproj-gemma-4-E2B-it-bf16.gguf", "BF16"), ("gemma-4-31B-it-IQ4_XS.gguf", "IQ4_XS"),
    ("gemma-4-31B-it-q8_0.gguf", "Q8_0"), ("README.md", None),
])
def test_quant_from_filename(name, quant):
    assert quant_of(name) == quant


def test_listing_split_into_models_and_projectors():
    models, projectors = files_from_listing([
        {"path": "gemma-4-E4B-it-Q8_0.gguf", "size": 8, "sha256": "a" * 64},
        {"path": "gemma-4-E4B-it-Q4_K_M.gguf", "size": 5},
        {"path": "mmproj-gemma-4-E4B-it-f16.gguf", "size": 1},
        {"path": "big/gemma-4-31B-it-Q8_0-00001-of-00002.gguf", "size": 1},
        {"path": "README.md", "size": 1},
    ])
    assert [m.quant for m in models] == ["Q8_0", "Q4_K_M"]
    assert models[0].sha256 == "a" * 64
    assert [p.filename for p in projectors] == ["mmproj-gemma-4-E4B-it-f16.gguf"]


def test_user_repo_is_stored_in_the_config_folder_and_listed_after_official():
    add_user_repo("E4B", "unsloth/gemma-4-E4B-it-GGUF", [
        {"path": "gemma-4-E4B-it-UD-Q4_K_XL.gguf", "size": 5_000_000_000},
        {"path": "mmproj-F16.gguf", "size": 900_000_000},
    ])
    stored = json.loads((paths.config_dir() / "catalog_user.json").read_text())
    assert stored["repos"][0]["repo"]["repo_id"] == "unsloth/gemma-4-E4B-it-GGUF"
    c = load_catalog()
    repos = c.variant("E4B").repos
    assert repos[0].official and repos[-1].repo_id == "unsloth/gemma-4-E4B-it-GGUF"
    entry = c.entry("unsloth/gemma-4-E4B-it-GGUF:UD-Q4_K_XL")
    assert entry.mmproj is not None and entry.mmproj.filename == "mmproj-F16.gguf"
    with pytest.raises(CatalogError, match="owner/name"):
        add_user_repo("E4B", "not a repo")


def test_refresh_from_the_hub_updates_sizes_and_works_offline_afterwards(
    local_hub: LocalHub, tmp_path: Path  # noqa: F811
):
    local_hub.add_repo("ggml-org/gemma-4-E2B-it-GGUF", {
        "gemma-4-E2B-it-Q8_0.gguf": b"GGUF" + b"\0" * 1000,
        "gemma-4-E2B-it-Q4_K_M.gguf": b"GGUF" + b"\0" * 500,
        "mmproj-gemma-4-E2B-it-bf16.gguf": b"GGUF" + b"\0" * 200,
    })
    store = ModelStore(tmp_path / "models", Downloader(HubClient(local_hub.endpoint)))
    c = refresh_from_hub(store.list_remote_files)
    e2b = c.variant("E2B").repos[0]
    assert e2b.official
    assert {f.quant: f.size for f in e2b.files} == {"Q8_0": 1004, "Q4_K_M": 504}
    assert e2b.files[0].sha256 and len(e2b.files[0].sha256) == 64
    assert e2b.mmproj[0].size == 204
    # The other repositories are not on this hub: they keep their shipped files.
    assert c.entry("31B-Q8_0").file.size == 32_635_674_400
    cache = json.loads((paths.cache_dir() / "catalog_hub_cache.json").read_text())
    assert any("gemma-4-31B" in e for e in cache["errors"])
    # Later, with no network at all, the cached listing is what the catalog shows.
    assert load_catalog().entry("E2B-Q4_K_M").file.size == 504
