"""Live model switching with the real engine: 270M Gemma 3 <-> synthetic Gemma 4, ten times each way.

After every switch the old host process is gone (checked in /proc), the new model answers, and
at the end the app process holds no more memory than it did after the first load (within 10%).
A switch to a truncated GGUF brings the previous model back. The same through the dialog.
"""

from __future__ import annotations

import gc
from dataclasses import asdict
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.hardware.planner import Machine
from app.core.storage.settings import Settings, load_settings
from app.services.engine_client import EngineClient
from app.services.model_switcher import ModelSwitcher
from app.ui.settings_dialog import SettingsDialog
from tests.fixtures.gemma4 import synthetic_gemma4

LOAD_MS = 120_000
ROUNDS = 10


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture()
def client(qtbot):
    c = EngineClient()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def gemma4_model() -> Path:
    return synthetic_gemma4()["model"]


def _switch(qtbot, switcher: ModelSwitcher, path: Path) -> dict:
    with qtbot.waitSignal(switcher.sig_switched, timeout=LOAD_MS) as done:
        assert switcher.switch(str(path), n_ctx=512, n_threads=2)
    return done.args[0]


def _answers(qtbot, client: EngineClient) -> dict:
    with qtbot.waitSignal(client.sig_finished, timeout=60_000) as done:
        client.generate_raw("Hello", {"temperature": 0.0, "max_tokens": 3})
    return asdict(done.args[0].stats)


def test_switch_back_and_forth_ten_times(qtbot, client, model_270m, gemma4_model):
    switcher = ModelSwitcher(client)
    _switch(qtbot, switcher, model_270m)
    _answers(qtbot, client)
    gc.collect()
    baseline = _rss()
    pids = [client.host_pid]
    rss: list[int] = []
    for round_ in range(ROUNDS):
        for path, arch in ((gemma4_model, "gemma4"), (model_270m, "gemma3")):
            old = client.host_pid
            info = _switch(qtbot, switcher, path)
            assert info["arch"] == arch and info["path"] == str(path)
            assert not _alive(old), f"round {round_}: host {old} still running"
            assert client.host_pid not in pids
            pids.append(client.host_pid)
            stats = _answers(qtbot, client)
            assert stats["completion_tokens"] >= 1 and stats["prompt_tokens"] >= 1
        gc.collect()
        rss.append(_rss())
    assert [p for p in pids[:-1] if _alive(p)] == []
    growth = rss[-1] / baseline - 1
    print(f"app RSS: {baseline / 2**20:.0f} MiB after the first load, "
          f"{rss[-1] / 2**20:.0f} MiB after {2 * ROUNDS} switches ({growth:+.1%}); "
          f"per round {[round(r / 2**20) for r in rss]}")
    assert abs(growth) <= 0.10


def test_switch_to_a_broken_gguf_brings_the_previous_model_back(qtbot, client, gemma4_model,
                                                                tmp_path):
    switcher = ModelSwitcher(client)
    _switch(qtbot, switcher, gemma4_model)
    good_pid = client.host_pid
    broken = tmp_path / "truncated.gguf"
    data = gemma4_model.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    with qtbot.waitSignal(switcher.sig_failed, timeout=LOAD_MS) as failed:
        assert switcher.switch(str(broken), n_ctx=512, n_threads=2)
    assert "truncated.gguf could not be loaded" in failed.args[0]
    assert "loaded again" in failed.args[0]
    assert not _alive(good_pid)
    assert client.model_info["path"] == str(gemma4_model)
    assert _answers(qtbot, client)["completion_tokens"] >= 1


def test_dialog_switches_live_and_puts_the_settings_back_after_a_failure(
        qtbot, client, model_270m, gemma4_model, tmp_path):
    switcher = ModelSwitcher(client)
    _switch(qtbot, switcher, model_270m)
    settings = Settings(model_path=str(model_270m), n_ctx=512)
    dialog = SettingsDialog(settings, switcher=switcher, machine=Machine.hypothetical(0, 16),
                            active_model=str(model_270m))
    qtbot.addWidget(dialog)
    dialog.show()
    page = dialog.model_page
    page.add_model(str(gemma4_model))
    qtbot.waitUntil(lambda: page.selected_facts() is not None, timeout=30_000)
    page.ctx_combo.setCurrentIndex(page.ctx_combo.findData(2048))
    with qtbot.waitSignal(switcher.sig_switched, timeout=LOAD_MS):
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
        assert page.switch_progress.isVisible()
    assert client.model_info["path"] == str(gemma4_model)
    assert client.model_info["n_ctx"] == 2048
    assert "is loaded and ready" in page.switch_status.text()
    assert load_settings()[0].model_path == str(gemma4_model)

    broken = tmp_path / "half.gguf"
    data = model_270m.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    page.add_model(str(broken))
    applied: list[Settings] = []
    dialog.sig_applied.connect(applied.append)
    with qtbot.waitSignal(switcher.sig_failed, timeout=LOAD_MS):
        qtbot.mouseClick(dialog.apply_button, Qt.MouseButton.LeftButton)
    assert client.model_info["path"] == str(gemma4_model)
    assert applied[-1].model_path == str(gemma4_model)
    assert load_settings()[0].model_path == str(gemma4_model)
    assert page.selected_path() == str(gemma4_model)
    assert "half.gguf could not be loaded" in page.switch_status.text()
    assert _answers(qtbot, client)["completion_tokens"] >= 1
