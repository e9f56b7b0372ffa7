"""Plain helpers of the settings dialog: the machine to plan for, installed models, moved paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings


def default_machine() -> Machine:
    """RAM only (cheap to read); the window passes the probed machine when it has one."""
    from app.core.hardware.devices import ram_bytes

    total, available = ram_bytes()
    return Machine(ram_available=available, ram_total=total)


def installed_models(store: Any) -> tuple[list[tuple[str, str | None]], list[tuple[str, int]]]:
    """(models with their projector, every file with its size) from a ModelStore."""
    if store is None:
        return [], []
    entries = list(store.installed())
    projectors: dict[str, str] = {}
    for e in entries:
        if e.filename.lower().startswith("mmproj"):
            projectors.setdefault(e.repo_id if e.repo_id != "local" else os.path.dirname(e.path),
                                  e.path)
    models = []
    for e in entries:
        if e.filename.lower().startswith("mmproj"):
            continue
        key = e.repo_id if e.repo_id != "local" else os.path.dirname(e.path)
        models.append((e.path, projectors.get(key)))
    return models, [(e.filename, int(e.size)) for e in entries]


def rebase_model_paths(settings: Settings, old_root: Path, new_root: Path) -> None:
    """Model paths under old_root now live under new_root; paths elsewhere stay."""

    def moved(value: str) -> str:
        try:
            return str(new_root / Path(value).relative_to(old_root))
        except ValueError:
            return value  # a model opened from another folder did not move

    if settings.model_path:
        settings.model_path = moved(settings.model_path)
    if settings.mmproj_path:
        settings.mmproj_path = moved(settings.mmproj_path)
    settings.recent_models = [moved(p) for p in settings.recent_models]
