"""Moving the models or data folder: the files go along, on a worker thread, with progress.

Each top-level entry is first tried with a rename (same disk: instant, nothing copied). Across
disks it is copied in 4 MiB blocks, and the source is deleted only after every copy finished,
so a failure or a cancel half-way leaves the old folder complete and the app still working.
Absolute paths that the models manifest keeps are rewritten to the new place.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from app.services.operations import OpContext, Operation

log = logging.getLogger(__name__)

BLOCK = 4 * 1024 * 1024
MANIFEST = "manifest.json"


class MoveError(Exception):
    """A move that cannot be done; the message says what to do."""


class MoveCancelled(MoveError):
    pass


def check_move(source: Path, target: Path) -> None:
    """Refuse moves that cannot work, in plain words."""
    source, target = source.resolve(), target.resolve()
    if source == target:
        raise MoveError("The new folder is the same as the current one.")
    if target.is_relative_to(source) or source.is_relative_to(target):
        raise MoveError(f"{target} is inside {source} (or the other way round). "
                        "Choose a folder elsewhere.")
    if target.exists() and not target.is_dir():
        raise MoveError(f"{target} is a file, not a folder. Choose a folder.")


def _entries(source: Path, exclude: set[Path]) -> list[Path]:
    if not source.is_dir():
        return []
    return sorted(p for p in source.iterdir() if p.resolve() not in exclude)


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def move_folder(source: Path, target: Path, exclude: tuple[Path, ...] = (),
                progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> int:
    """Move everything inside `source` into `target`; returns bytes moved."""
    check_move(source, target)
    target.mkdir(parents=True, exist_ok=True)
    skip = {p.resolve() for p in exclude}
    entries = _entries(source, skip)
    clashes = [e.name for e in entries if (target / e.name).exists()]
    if clashes:
        raise MoveError(f"{target} already has {', '.join(clashes[:3])}. Choose an empty folder.")
    total = sum(_size(e) for e in entries)
    done = 0
    copied: list[Path] = []
    renamed: list[Path] = []
    if progress:
        progress(0, total)
    try:
        for entry in entries:
            if cancel is not None and cancel.is_set():
                raise MoveCancelled("The move was cancelled; the files stay where they were.")
            try:
                os.rename(entry, target / entry.name)
                renamed.append(entry)
                done += _size(target / entry.name)
                if progress:
                    progress(done, total)
                continue
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            copied.append(entry)  # before copying: a half-copied entry is undone too
            done = _copy_tree(entry, target / entry.name, done, total, progress, cancel)
    except BaseException:
        for entry in renamed:  # same disk: put them back as they were
            os.rename(target / entry.name, entry)
        for entry in copied:  # undo the copies; the sources were not touched yet
            dest = target / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest, ignore_errors=True)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
        raise
    for entry in copied:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    _rewrite_manifest(target, source, target)
    return done


def _copy_tree(src: Path, dst: Path, done: int, total: int,
               progress: Callable[[int, int], None] | None,
               cancel: threading.Event | None) -> int:
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return done
    if src.is_dir():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            done = _copy_tree(child, dst / child.name, done, total, progress, cancel)
        shutil.copystat(src, dst)
        return done
    with src.open("rb") as fin, dst.open("wb") as fout:
        while True:
            if cancel is not None and cancel.is_set():
                raise MoveCancelled("The move was cancelled; the files stay where they were.")
            block = fin.read(BLOCK)
            if not block:
                break
            fout.write(block)
            done += len(block)
            if progress:
                progress(done, total)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return done


def _rewrite_manifest(folder: Path, old: Path, new: Path) -> None:
    """Point the models manifest's absolute paths at the new folder (imported-in-place files stay)."""
    path = folder / MANIFEST
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return
    old_s, new_s = str(old.resolve()), str(new.resolve())
    for item in data.get("files", []) if isinstance(data, dict) else []:
        value = item.get("path") if isinstance(item, dict) else None
        if isinstance(value, str) and not item.get("by_reference") and (
                value == old_s or value.startswith(old_s + os.sep)):
            item["path"] = new_s + value[len(old_s):]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), "utf-8")
    os.replace(tmp, path)


class FolderMoveJob(Operation):
    """move_folder in the background: sig_progress(fraction), sig_succeeded(new path), sig_failed."""

    def __init__(self, kind: str, source: Path, target: Path, exclude: tuple[Path, ...] = ()) -> None:
        super().__init__(self._move, name=f"settings-move-{kind}", failure_message=self._message)
        self.kind = kind
        self.source, self.target, self.exclude = source, target, exclude

    def _move(self, ctx: OpContext) -> str:
        move_folder(self.source, self.target, self.exclude,
                    lambda d, t: ctx.progress(d / t if t else 1.0), ctx.cancel_event)
        return str(self.target)

    def _message(self, exc: BaseException) -> str:
        if isinstance(exc, MoveError):
            return str(exc)
        if isinstance(exc, OSError):
            return (f"The files could not be moved to {self.target}: {exc.strerror or exc}. "
                    f"They stay in {self.source}.")
        return f"The files could not be moved: {exc}. They stay in {self.source}."
