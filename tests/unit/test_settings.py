"""Settings file: defaults, round trip, atomic writes, broken and future files kept aside."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from app.core.storage import settings as settings_module
from app.core.storage.settings import (
    PRESETS,
    SCHEMA_VERSION,
    Settings,
    apply_preset,
    default_path,
    load_settings,
    save_settings,
)


def test_defaults_when_no_file(private_folders: Path) -> None:
    loaded, notice = load_settings()
    assert loaded == Settings() and notice is None
    assert default_path() == private_folders / "config" / "settings.json"
    assert (loaded.temperature, loaded.top_p, loaded.top_k) == (1.0, 0.95, 64)
    assert (loaded.n_ctx, loaded.n_gpu_layers, loaded.enable_thinking, loaded.theme) == (
        8192,
        None,
        True,
        "system",
    )
    assert loaded.schema_version == SCHEMA_VERSION == 1


def test_round_trip_every_field() -> None:
    changed = Settings(
        model_path="/m/gemma.gguf",
        mmproj_path="/m/mmproj.gguf",
        n_ctx=32768,
        n_gpu_layers=20,
        enable_thinking=False,
        system_prompt="Be brief.\nReally.",
        preset="Precise",
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        repeat_penalty=1.05,
        max_tokens=512,
        seed=7,
        image_detail=560,
        microphone_id="testmic",
        push_to_talk_shortcut="F9",
        theme="dark",
        text_scale=1.25,
        send_with_ctrl_enter=True,
        models_dir="/models",
        data_dir="/data",
        offline=True,
        recent_models=["/m/a.gguf", "/m/b.gguf"],
        kv_cache_type="q8_0",
        min_decode_tok_s=12.0,
        tools=False,
        mcp_servers={"time": {"command": "mcp-server-time", "args": [], "env": {}}},
        tool_max_steps=3,
        always_allowed_tools=["time/get_current_time"],
        disabled_tools=["time/convert_time"],
        server_enabled=True,
        server_port=9090,
        server_lan=True,
        server_allow_switch=True,
        remote_server="gpu-box",
    )
    # Every field differs from its default, so the test notices a field that is not saved.
    for item in dataclasses.fields(Settings):
        if item.name != "schema_version":
            assert getattr(changed, item.name) != getattr(Settings(), item.name), item.name
    save_settings(changed)
    loaded, notice = load_settings()
    assert loaded == changed and notice is None
    on_disk = json.loads(default_path().read_text("utf-8"))
    assert on_disk["schema_version"] == 1 and on_disk["theme"] == "dark"


def test_copy_is_independent() -> None:
    original = Settings(recent_models=["a"])
    edited = original.copy()
    edited.recent_models.append("b")
    edited.theme = "light"
    assert original.recent_models == ["a"] and original.theme == "system"


def test_presets() -> None:
    assert PRESETS["Balanced"] == {
        "temperature": 1.0,
        "top_p": 0.95,
        "top_k": 64,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
    }
    assert set(PRESETS) == {"Balanced", "Precise", "Creative"}
    precise = apply_preset(Settings(), "Precise")
    assert (precise.preset, precise.temperature, precise.top_k) == ("Precise", 0.3, 40)
    assert apply_preset(precise, "Balanced") == Settings()


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]", "\x00\x01binary"])
def test_corrupt_file_is_backed_up_and_defaults_used(content: str) -> None:
    path = default_path()
    path.write_text(content, "utf-8")
    loaded, notice = load_settings()
    assert loaded == Settings()
    assert notice is not None and "could not be read" in notice
    backups = list(path.parent.glob("settings.json.*.bak"))
    assert len(backups) == 1 and backups[0].read_text("utf-8") == content
    assert backups[0].name in notice
    # Saving afterwards works and the backup stays.
    save_settings(loaded)
    assert load_settings() == (Settings(), None)
    assert backups[0].exists()


def test_future_version_is_backed_up_not_overwritten() -> None:
    path = default_path()
    path.write_text(json.dumps({"schema_version": 99, "theme": "dark"}), "utf-8")
    loaded, notice = load_settings()
    assert loaded == Settings() and notice is not None and "newer version" in notice
    assert json.loads(path.read_text("utf-8"))["schema_version"] == 99  # untouched until a save
    load_settings()
    assert len(list(path.parent.glob("settings.json.*.bak"))) == 2  # two backups, two names


def test_unknown_keys_ignored_and_bad_values_reset() -> None:
    path = default_path()
    path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "future_key": 1,
                "theme": "purple",
                "n_ctx": "big",
                "top_k": 32,
                "temperature": 1,
                "enable_thinking": 1,
                "recent_models": ["a", 3],
                "text_scale": 10.0,
                "seed": None,
                "model_path": "/x.gguf",
            }
        ),
        "utf-8",
    )
    loaded, notice = load_settings()
    assert (
        loaded.top_k == 32 and loaded.temperature == 1.0 and isinstance(loaded.temperature, float)
    )
    assert loaded.model_path == "/x.gguf" and loaded.seed is None
    assert (
        loaded.theme,
        loaded.n_ctx,
        loaded.enable_thinking,
        loaded.recent_models,
        loaded.text_scale,
    ) == (
        "system",
        8192,
        True,
        [],
        1.0,
    )
    assert notice is not None
    for name in ("theme", "n_ctx", "enable_thinking", "recent_models", "text_scale"):
        assert name in notice
    assert "future_key" not in notice


def test_migration_table_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of an older version passes through every migration step in order."""
    monkeypatch.setattr(settings_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(
        settings_module,
        "MIGRATIONS",
        {
            1: lambda d: {
                **d,
                "schema_version": 2,
                "theme": "dark" if d.pop("dark_mode") else "light",
            },
            2: lambda d: {**d, "schema_version": 3, "n_ctx": d.pop("context")},
        },
    )
    default_path().write_text(
        json.dumps({"schema_version": 1, "dark_mode": True, "context": 4096}), "utf-8"
    )
    loaded, notice = load_settings()
    assert (loaded.theme, loaded.n_ctx, notice) == ("dark", 4096, None)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "settings.json"
    save_settings(Settings(theme="dark"), path)
    inode_before = os.stat(path).st_ino
    save_settings(Settings(theme="light"), path)
    assert os.stat(path).st_ino != inode_before  # replaced, not rewritten in place
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]
    assert load_settings(path)[0].theme == "light"


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(Settings(theme="dark"), path)
    bad = Settings(theme="light")
    bad.recent_models = [object()]  # type: ignore[list-item]  # not JSON: the save fails
    with pytest.raises(TypeError):
        save_settings(bad, path)
    assert load_settings(path)[0].theme == "dark"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
