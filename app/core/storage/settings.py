"""User settings: a dataclass stored as JSON in the config folder, written atomically.

A file that cannot be read (broken JSON, or written by a newer app) is never overwritten in
place: it is copied next to itself with a timestamp, defaults are used, and the caller gets
a notice to show the user. Unknown keys are ignored; a value of the wrong type falls back
to its default (and the notice names it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union, get_args, get_origin, get_type_hints

from app.core import paths
from app.core.engine.messages import DEFAULT_N_CTX
from app.core.engine.records import SamplingParams

SCHEMA_VERSION: Final = 1
THEMES: Final = ("light", "dark", "system")

# Google's recommended sampling for Gemma; its one home is the engine's SamplingParams.
GEMMA: Final = SamplingParams()
# Sampling presets. Balanced is what Google recommends.
PRESETS: Final[dict[str, dict[str, float | int]]] = {
    "Balanced": GEMMA.recommended(),
    "Precise": {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.05,
    },
    "Creative": {
        "temperature": 1.2,
        "top_p": 0.98,
        "top_k": 100,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
    },
}


@dataclass
class Settings:
    """Everything the user can set; the settings dialog edits a copy (Cancel keeps this one)."""

    schema_version: int = SCHEMA_VERSION
    model_path: str | None = None
    mmproj_path: str | None = None
    n_ctx: int = DEFAULT_N_CTX
    n_gpu_layers: int | None = None  # None: the fit planner decides
    enable_thinking: bool = True
    system_prompt: str = ""
    preset: str = "Balanced"
    temperature: float = GEMMA.temperature
    top_p: float = GEMMA.top_p
    top_k: int = GEMMA.top_k
    min_p: float = GEMMA.min_p
    repeat_penalty: float = GEMMA.repeat_penalty
    max_tokens: int = GEMMA.max_tokens
    seed: int | None = None
    image_detail: int = 280  # vision tokens per image: 70, 140, 280, 560 or 1120
    microphone_id: str | None = None
    push_to_talk_shortcut: str = "Ctrl+Space"
    theme: str = "system"  # light | dark | system
    text_scale: float = 1.0
    send_with_ctrl_enter: bool = False
    models_dir: str | None = None
    data_dir: str | None = None
    offline: bool = False
    recent_models: list[str] = field(default_factory=list)
    kv_cache_type: str = "f16"  # f16 | q8_0 (about half the KV memory)
    min_decode_tok_s: float = 8.0  # the recommendation's speed floor (about reading speed)
    tools: bool = True  # offer the MCP servers' tools to the model
    mcp_servers: dict[str, Any] = field(default_factory=dict)  # {"mcpServers": {…}} shape
    tool_max_steps: int = 8  # model calls per turn before the agent loop stops
    always_allowed_tools: list[str] = field(default_factory=list)  # "server/tool" ids
    disabled_tools: list[str] = field(default_factory=list)  # per-tool off switch, same ids
    server_enabled: bool = False  # the OpenAI-compatible API, served from the window
    server_port: int = 8080
    server_lan: bool = False  # bind 0.0.0.0 (other devices); only with an API key
    server_allow_switch: bool = False  # a request naming another installed model loads it
    remote_server: str | None = None  # RemoteServer.id the chat runs on (servers: app.core.remote)

    def copy(self) -> Settings:
        """An independent copy (lists included) for editing."""
        return dataclasses.replace(
            self,
            recent_models=list(self.recent_models),
            mcp_servers=json.loads(json.dumps(self.mcp_servers)),
            always_allowed_tools=list(self.always_allowed_tools),
            disabled_tools=list(self.disabled_tools),
        )


def apply_preset(settings: Settings, name: str) -> Settings:
    """A copy of settings with the sampling values of preset `name`."""
    values = PRESETS[name]
    return dataclasses.replace(settings.copy(), preset=name, **values)  # type: ignore[arg-type]


# From version N to N+1: MIGRATIONS[N](data) -> data. Empty while version 1 is the only one.
MIGRATIONS: Final[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def default_path() -> Path:
    """settings.json in the config folder."""
    return paths.config_dir() / "settings.json"


def _type_ok(value: Any, hint: Any) -> bool:
    """Does a JSON value fit a field's type hint? (bool is not an int here; an int is a float)."""
    args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    allowed = {get_origin(a) or a for a in args}
    if value is None:
        return type(None) in allowed
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return bool({int, float} & allowed)
    if isinstance(value, list):
        return list in allowed and all(isinstance(v, str) for v in value)
    return type(value) in allowed


def _valid(name: str, value: Any) -> bool:
    if name == "theme":
        return value in THEMES
    if name == "kv_cache_type":
        return value in ("f16", "q8_0")
    if name == "preset":
        return value in PRESETS or value == "Custom"
    if name in ("n_ctx", "max_tokens", "image_detail", "tool_max_steps") and value <= 0:
        return False
    if name == "server_port" and not 1 <= value <= 65535:
        return False
    return not (name == "text_scale" and not 0.5 <= value <= 3.0)


def _from_dict(data: dict[str, Any]) -> tuple[Settings, list[str]]:
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    rejected: list[str] = []
    for item in dataclasses.fields(Settings):
        if item.name == "schema_version" or item.name not in data:
            continue
        value = data[item.name]
        if _type_ok(value, hints[item.name]) and (value is None or _valid(item.name, value)):
            values[item.name] = float(value) if hints[item.name] is float else value
        else:
            rejected.append(item.name)
    return Settings(**values), rejected


def _backup(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{stamp}.bak")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{stamp}-{counter}.bak")
        counter += 1
    shutil.copy2(path, target)
    return target


def load_settings(path: Path | None = None) -> tuple[Settings, str | None]:
    """Read the settings; return (settings, a notice for the user or None)."""
    path = path or default_path()
    if not path.exists():
        return Settings(), None
    try:
        data = json.loads(path.read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        backup = _backup(path)
        return Settings(), (
            f"Your settings file could not be read ({exc.__class__.__name__}), so the defaults "
            f"are in use. The old file was kept as {backup.name}."
        )
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        backup = _backup(path)
        return Settings(), (
            "Your settings were written by a newer version of Gemma Desktop, so the defaults are "
            f"in use. The file was kept as {backup.name}; update the app to get them back."
        )
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    settings, rejected = _from_dict(data)
    if rejected:
        return settings, "Some settings were invalid and were reset: " + ", ".join(rejected) + "."
    return settings, None


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write the settings atomically: a crash leaves either the old file or the new one."""
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(settings)
    data["schema_version"] = SCHEMA_VERSION
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too (a power cut could otherwise undo it).
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
