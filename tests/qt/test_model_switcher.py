"""ModelSwitcher with the real engine (270M model): fresh host per switch, the previous model back
after a failed switch, and a running answer is only cut off when the user says so."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.services.engine_client import EngineClient
from app.services.model_switcher import ModelSwitcher

LOAD_MS = 120_000


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _truncated(model: Path, folder: Path) -> Path:
    broken = folder / "broken-copy.gguf"
    with model.open("rb") as src, broken.open("wb") as dst:
        dst.write(src.read(model.stat().st_size // 3))
    return broken


def _switch(qtbot, switcher: ModelSwitcher, path: Path, **kw) -> dict:
    with qtbot.waitSignal(switcher.sig_switched, timeout=LOAD_MS) as done:
        assert switcher.switch(str(path), n_ctx=kw.pop("n_ctx", 512), n_threads=2, **kw)
    return done.args[0]


def _generate(qtbot, client: EngineClient, tokens: int = 4) -> int:
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("The capital of France is", {"temperature": 0.0, "max_tokens": tokens})
    return int(done.args[0].stats.completion_tokens)


def test_switch_loads_in_a_fresh_host_and_the_old_one_exits(qtbot, client, model_270m, tmp_path):
    switcher = ModelSwitcher(client)
    progress: list[float] = []
    switcher.sig_progress.connect(progress.append)
    info = _switch(qtbot, switcher, model_270m)
    assert info["path"] == str(model_270m)
    assert progress[0] == 0.0 and progress[-1] == 1.0
    assert progress == sorted(progress)
    first = client.host_pid
    copy = tmp_path / "second.gguf"
    shutil.copyfile(model_270m, copy)
    _switch(qtbot, switcher, copy)
    assert client.host_pid != first
    assert not _alive(first)
    assert switcher.current is not None and switcher.current.path == str(copy)
    assert _generate(qtbot, client) == 4


def test_failed_switch_brings_the_previous_model_back(qtbot, client, model_270m, tmp_path):
    switcher = ModelSwitcher(client)
    _switch(qtbot, switcher, model_270m)
    broken = _truncated(model_270m, tmp_path)
    switched: list[dict] = []
    switcher.sig_switched.connect(switched.append)
    with qtbot.waitSignal(switcher.sig_failed, timeout=LOAD_MS) as failed:
        assert switcher.switch(str(broken), n_ctx=512, n_threads=2)
    message = failed.args[0]
    assert "broken-copy.gguf could not be loaded" in message
    assert "gemma3-270m" in message and "loaded again" in message
    assert switched == []
    assert not switcher.switching
    assert client.model_info is not None and client.model_info["path"] == str(model_270m)
    assert switcher.current.path == str(model_270m)
    assert _generate(qtbot, client) == 4


def test_failed_switch_brings_the_previous_model_back_with_its_projector(qtbot, client, tmp_path,
                                                                         model_270m):
    from tests.fixtures.gemma4 import synthetic_gemma4

    g = synthetic_gemma4()
    # Loaded at start-up, not through the switcher: the switcher learns it from the client.
    with qtbot.waitSignal(client.sig_loaded, timeout=LOAD_MS):
        client.load_model(str(g["model"]), mmproj=str(g["mmproj"]), n_ctx=1024, n_threads=2)
    assert client.model is not None and client.model.supports_vision
    switcher = ModelSwitcher(client)
    with qtbot.waitSignal(switcher.sig_failed, timeout=LOAD_MS):
        assert switcher.switch(str(_truncated(model_270m, tmp_path)), n_ctx=512, n_threads=2)
    assert client.model is not None and client.model.path == str(g["model"])
    assert client.model.mmproj == str(g["mmproj"])
    assert client.model.supports_vision and client.model.supports_audio


def test_failed_first_load_says_what_to_do(qtbot, client, tmp_path, model_270m):
    switcher = ModelSwitcher(client)
    with qtbot.waitSignal(switcher.sig_failed, timeout=LOAD_MS) as failed:
        switcher.switch(str(_truncated(model_270m, tmp_path)), n_ctx=512)
    assert "Choose another model in Settings" in failed.args[0]
    assert client.host_pid is None  # nothing left running


def test_switch_during_an_answer_asks_first(qtbot, client, model_270m, tmp_path):
    switcher = ModelSwitcher(client)
    _switch(qtbot, switcher, model_270m)
    pieces: list[str] = []
    client.sig_delta.connect(lambda _id, kind, text: pieces.append(text))
    client.generate_raw("Once upon a time", {"max_tokens": 5000})
    qtbot.waitUntil(lambda: len(pieces) >= 2, timeout=30_000)
    asked: list[bool] = []

    def decline() -> bool:
        asked.append(False)
        return False

    # Declined: nothing happens, the answer keeps coming from the same host.
    pid = client.host_pid
    assert not switcher.switch(str(model_270m), n_ctx=1024, confirm=decline)
    assert asked == [False] and client.busy and client.host_pid == pid
    # No one to ask: never cut off an answer silently.
    assert not switcher.switch(str(model_270m), n_ctx=1024)
    assert client.busy
    # Accepted: the answer stops and the new model loads.
    with qtbot.waitSignal(switcher.sig_switched, timeout=LOAD_MS):
        assert switcher.switch(str(model_270m), n_ctx=1024, n_threads=2, confirm=lambda: True)
    assert not client.busy and client.host_pid != pid and not _alive(pid)
    assert client.model_info["n_ctx"] == 1024


def test_a_second_switch_while_loading_is_refused(qtbot, client, model_270m):
    switcher = ModelSwitcher(client)
    with qtbot.waitSignal(switcher.sig_switched, timeout=LOAD_MS):
        assert switcher.switch(str(model_270m), n_ctx=512, n_threads=2)
        assert switcher.switching
        assert not switcher.switch(str(model_270m), n_ctx=1024)
    assert client.model_info["n_ctx"] == 512
