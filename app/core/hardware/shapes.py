"""Model shapes from real GGUF headers, read before download (HTTP ranges) or from installed files.

The catalog ships approximate hyper-parameters; the planner is only exact with the header. A
refresh reads each catalog file's header over HTTP range requests (a few MB, never the weights)
and caches the shapes, so plans stay exact offline.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any, cast

from app.core import paths
from app.core.hardware.gguf_info import GGUFInfo, read_gguf, read_gguf_path
from app.core.hardware.memory import ModelShape

log = logging.getLogger(__name__)

CACHE_FILE = "model-shapes.json"
SCHEMA_VERSION = 1


def _cache_path() -> Path:
    return paths.cache_dir() / CACHE_FILE


def _to_dict(shape: ModelShape) -> dict[str, Any]:
    return asdict(shape)


def _from_dict(data: dict[str, Any]) -> ModelShape:
    kwargs: dict[str, Any] = {}
    for f in fields(ModelShape):
        if f.name not in data:  # read by an older version: the field's default
            continue
        value = data[f.name]
        kwargs[f.name] = tuple(value) if isinstance(value, list) else value
    return ModelShape(**kwargs)


def cached_shapes() -> dict[str, ModelShape]:
    """Shapes read earlier, by catalog entry id (empty when nothing was read yet)."""
    try:
        data = json.loads(_cache_path().read_text())
        if data.get("schema_version") != SCHEMA_VERSION:
            return {}
        return {key: _from_dict(value) for key, value in data.get("shapes", {}).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(shapes: dict[str, ModelShape]) -> None:
    path = _cache_path()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                               "shapes": {k: _to_dict(v) for k, v in shapes.items()}}))
    os.replace(tmp, path)


def remote_info(repo_id: str, filename: str, revision: str = "main", hub: Any = None) -> GGUFInfo:
    """A GGUF header read over HTTP range requests (the weights are never fetched)."""
    from app.core.download.remote_file import RemoteRangeFile

    with RemoteRangeFile.from_hub(repo_id, filename, revision, hub) as remote:
        return read_gguf(cast(IO[bytes], remote))  # a seekable binary stream, as read_gguf needs


def refresh_shapes(
    entries: Iterable[Any],
    read_remote: Callable[[str, str, str], GGUFInfo] | None = None,
    local_path: Callable[[Any], Path | None] | None = None,
) -> dict[str, ModelShape]:
    """Read every entry's header (local file if installed, else remote) and cache the shapes.

    An entry whose header cannot be read keeps its cached shape (or the catalog's estimate).
    """
    read_remote = read_remote or (lambda repo, name, rev: remote_info(repo, name, rev))
    shapes = cached_shapes()
    projectors: dict[tuple[str, str], GGUFInfo | None] = {}
    for entry in entries:
        repo, rev = entry.repo.repo_id, entry.repo.revision
        try:
            local = local_path(entry) if local_path else None
            info = read_gguf_path(local) if local else read_remote(repo, entry.file.filename, rev)
            projector = None
            if entry.mmproj is not None:
                key = (repo, entry.mmproj.filename)
                if key not in projectors:
                    try:
                        projectors[key] = read_remote(repo, entry.mmproj.filename, rev)
                    except Exception:  # noqa: BLE001 - the model's own header still helps
                        projectors[key] = None
                projector = projectors[key]
            shapes[entry.id] = ModelShape.from_gguf(info, projector, file_bytes=entry.file.size)
        except Exception as exc:  # noqa: BLE001 - offline, gated, gone: keep what we had
            log.info("header of %s not read: %s", entry.id, exc)
    _save(shapes)
    return shapes
