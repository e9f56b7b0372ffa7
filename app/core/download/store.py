"""The models folder: what is installed (a JSON manifest next to the files), download, remove, import."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.core import paths
from app.core.download.errors import (
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    UnsafeNameError,
)
from app.core.download.fetch import DISK_RESERVE, Downloader
from app.core.download.hashing import HASH_BLOCK, sha256_file
from app.core.download.hub import HubClient, RemoteEntry, RemoteFile
from app.core.download.meter import ProgressFn

MANIFEST = "manifest.json"
LOCAL_REPO = "local"
Validator = Callable[[Path], None]  # raises with a user-facing message when the file is unusable


@dataclass(frozen=True)
class InstalledModel:
    """One file in the store (a model or a projector)."""

    repo_id: str  # "local" for imported files
    filename: str
    path: str
    size: int
    sha256: str | None
    revision: str = "main"
    commit: str | None = None
    by_reference: bool = False  # imported in place, not copied into the models folder
    installed_at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.repo_id}/{self.filename}"

    @property
    def verified(self) -> bool:
        """False when the Hub gave no sha256 to check the bytes against (its ETag was not one)."""
        return self.sha256 is not None


class ModelStore:
    """Installed GGUF files under one folder (``paths.models_dir()`` by default)."""

    def __init__(self, root: Path | None = None, downloader: Downloader | None = None) -> None:
        self.root = root or paths.models_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.downloader = downloader or Downloader()
        self._lock = threading.Lock()

    @property
    def hub(self) -> HubClient:
        return self.downloader.hub

    # ----- queries -----------------------------------------------------------------------------
    def installed(self) -> list[InstalledModel]:
        """Entries whose file is still on disk, sorted by repo and file name."""
        return sorted(
            (m for m in self._read().values() if Path(m.path).is_file()),
            key=lambda m: (m.repo_id, m.filename),
        )

    def find(self, repo_id: str, filename: str) -> InstalledModel | None:
        entry = self._read().get(f"{repo_id}/{filename}")
        return entry if entry is not None and Path(entry.path).is_file() else None

    def path_for(self, repo_id: str, filename: str) -> Path:
        """Where a Hub file lives in the store (one folder per repository); refuses escapes."""
        folder = repo_id.replace("/", "__")
        if not _plain_relative(folder) or "/" in folder or "\\" in folder:
            raise UnsafeNameError(repo_id)
        if not _plain_relative(filename):
            raise UnsafeNameError(filename)
        return self.root / folder / filename

    def partial_bytes(self, repo_id: str, filename: str) -> int:
        """Bytes already on disk from an interrupted download (what Resume will not fetch again)."""
        part = self.path_for(repo_id, filename)
        part = part.with_name(part.name + ".part")
        return part.stat().st_size if part.is_file() else 0

    def discard_partial(self, repo_id: str, filename: str) -> None:
        """Forget an interrupted download (Cancel while paused)."""
        dest = self.path_for(repo_id, filename)
        dest.with_name(dest.name + ".part").unlink(missing_ok=True)
        dest.with_name(dest.name + ".part.json").unlink(missing_ok=True)

    def list_remote_files(self, repo_id: str, revision: str = "main") -> list[RemoteEntry]:
        """(name, size, sha256) of every file in a Hub repository, for the catalog refresh."""
        return self.hub.list_files(repo_id, revision)

    def plan(
        self, files: list[tuple[str, str, str]], cancel: threading.Event | None = None
    ) -> list[RemoteFile]:
        """Metadata for several (repo_id, filename, revision); checks the disk has room for all."""
        remotes = [self.downloader.info(r, f, rev, cancel) for r, f, rev in files]
        missing = sum(
            r.size - self.partial_bytes(r.repo_id, r.filename)
            for r in remotes if not self._is_current(r)
        )
        if missing:
            free = self.downloader.free_space(self.root)
            if free < missing + DISK_RESERVE:
                raise DiskSpaceError(str(self.root), missing + DISK_RESERVE, free)
        return remotes

    # ----- changes -----------------------------------------------------------------------------
    def download(
        self,
        repo_id: str,
        filename: str,
        revision: str = "main",
        on_progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
        pause: threading.Event | None = None,
        remote: RemoteFile | None = None,
    ) -> Path:
        """Download (or resume) a Hub file into the store, verified; returns its path."""
        dest = self.path_for(repo_id, filename)  # refuses an unsafe name before any request
        if remote is None:
            remote = self.downloader.info(repo_id, filename, revision, cancel)
        if self._is_current(remote):
            return dest
        self.downloader.fetch(
            repo_id, filename, dest, revision, on_progress, cancel, pause, remote=remote
        )
        self._put(InstalledModel(
            repo_id, filename, str(dest), remote.size, remote.sha256, revision, remote.commit,
            installed_at=time.time(),
        ))
        return dest

    def remove(self, repo_id: str, filename: str) -> None:
        """Delete a file (and any partial download); an imported-by-reference file is only forgotten."""
        key = f"{repo_id}/{filename}"
        with self._lock:
            entries = self._read()
            entry = entries.pop(key, None)
            self._write(entries)
        if entry is not None and not entry.by_reference and self._inside(Path(entry.path)):
            Path(entry.path).unlink(missing_ok=True)
        if repo_id != LOCAL_REPO:
            dest = self.path_for(repo_id, filename)
            for extra in (dest, dest.with_name(dest.name + ".part"),
                          dest.with_name(dest.name + ".part.json")):
                extra.unlink(missing_ok=True)
            if dest.parent != self.root and dest.parent.is_dir() and not any(dest.parent.iterdir()):
                dest.parent.rmdir()

    def import_local(
        self,
        source: Path,
        *,
        copy: bool = True,
        validate: Validator | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        """Add a GGUF from disk: copied into the store (hashed while copying) or referenced in place.

        ``validate`` (the hardware planner's GGUF header check) runs first and raises to refuse it.
        """
        source = source.expanduser().resolve()
        if not source.is_file():
            raise DownloadError(f"{source} is not a file. Choose a .gguf model file.")
        if validate is not None:
            validate(source)
        size = source.stat().st_size
        if copy:
            dest = self.root / LOCAL_REPO / source.name
            free = self.downloader.free_space(self.root)
            if free < size + DISK_RESERVE:
                raise DiskSpaceError(str(self.root), size + DISK_RESERVE, free)
            sha = _copy_hashing(source, dest, on_progress, cancel)
        else:
            dest = source
            sha = sha256_file(source, on_progress, cancel)
        entry = InstalledModel(
            LOCAL_REPO, source.name, str(dest), size, sha, "local", None,
            by_reference=not copy, installed_at=time.time(),
        )
        self._put(entry)
        return entry

    # ----- manifest ----------------------------------------------------------------------------
    def _inside(self, path: Path) -> bool:
        # A manifest row is data from disk: never delete what it names outside the folder.
        return path.resolve().is_relative_to(self.root.resolve())

    def _is_current(self, remote: RemoteFile) -> bool:
        entry = self.find(remote.repo_id, remote.filename)
        return (
            entry is not None and entry.size == remote.size
            and (remote.sha256 is None or entry.sha256 == remote.sha256)
            and Path(entry.path).stat().st_size == remote.size
        )

    def _put(self, entry: InstalledModel) -> None:
        with self._lock:
            entries = self._read()
            entries[entry.key] = entry
            self._write(entries)

    def _read(self) -> dict[str, InstalledModel]:
        try:
            raw: Any = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        out: dict[str, InstalledModel] = {}
        for item in raw.get("files", []):
            try:
                entry = InstalledModel(**item)
            except TypeError:
                continue  # a row from a newer or broken manifest: skip it, keep the rest
            out[entry.key] = entry
        return out

    def _write(self, entries: dict[str, InstalledModel]) -> None:
        path = self.root / MANIFEST
        tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
        data = {"schema_version": 1, "files": [asdict(e) for e in entries.values()]}
        with tmp.open("w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def is_projector(filename: str) -> bool:
    """Whether a GGUF file name is a multimodal projector (llama.cpp's "mmproj-…" naming)."""
    return filename.replace("\\", "/").rsplit("/", 1)[-1].lower().startswith("mmproj")


def _plain_relative(name: str) -> bool:
    """A relative path of plain parts: not absolute, no "..", no empty or "." part, no NUL."""
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _copy_hashing(
    source: Path, dest: Path,
    on_progress: Callable[[int, int], None] | None, cancel: threading.Event | None,
) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    total = source.stat().st_size
    done = 0
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            while block := src.read(HASH_BLOCK):
                digest.update(block)
                dst.write(block)
                done += len(block)
                if on_progress is not None:
                    on_progress(done, total)
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled()
        shutil.copystat(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()
