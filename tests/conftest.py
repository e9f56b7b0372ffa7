"""Test-wide setup: private folders for every test, and no leaked threads or child processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.leaks import SESSION_PIDS
from tests.fixtures.pulse import pulse  # noqa: F401 - session fixture used below

# Before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _thread_running(t: threading.Thread) -> bool:
    """Alive by the OS: Python keeps a "Dummy" entry for every foreign (Qt) thread that ever ran Python."""
    if not t.is_alive() or getattr(t, "_leak_ok", False):
        return False
    if isinstance(t, threading._DummyThread):  # type: ignore[attr-defined]
        return t.native_id is not None and Path(f"/proc/self/task/{t.native_id}").exists()
    return True


def _children() -> set[int]:
    """Live child processes of this test process (Linux /proc)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        for pid in text.split():
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                pids.add(int(pid))
    return pids


@pytest.fixture(autouse=True)
def private_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Config, data, cache, logs, models and the HF cache all live in tmp_path.

    The app itself sets variables (moved folders, offline mode): the environment is put back
    exactly as it was after every test, so nothing leaks into the next one.
    """
    saved = dict(os.environ)
    home = tmp_path / "gemma-home"
    monkeypatch.setenv("GEMMA_DESKTOP_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield home
    monkeypatch.undo()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest):
    """Fail any test that leaves a Python thread or a child process running."""
    threads_before = {t.ident for t in threading.enumerate()}
    children_before = _children()
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra_threads = [
            t for t in threading.enumerate() if t.ident not in threads_before and _thread_running(t)
        ]
        extra_children = _children() - children_before - SESSION_PIDS
        if not extra_threads and not extra_children:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = [t.name for t in extra_threads]
    pytest.fail(f"test left running: threads {names}, child processes {sorted(extra_children)}")


@pytest.fixture(scope="session", autouse=True)
def audio_server(pulse):  # noqa: F811 - the imported session fixture
    """A private PulseAudio with a FIFO microphone for the whole session.

    Qt Multimedia binds to the sound server the first time anything asks for audio devices, so it
    must be running before the first Qt test, whichever test that is.
    """
    return pulse


@pytest.fixture(scope="session")
def model_270m() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF."""
    from tests.fixtures.models import gemma3_270m_path

    return gemma3_270m_path()
