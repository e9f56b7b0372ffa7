"""The model manager against the local hub: fit badges, downloads with progress, pause/resume (also
across a restart), cancel, delete, a gated repo's token, imports, another repo, offline mode.

Everything real: the downloader, the store, the planner and the HTTP server on 127.0.0.1. The
machine is given as a HardwareReport (what the probe would say), so the expected badges hold on
any computer that runs the tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QInputDialog, QMessageBox, QWidget

from app.core.catalog import load_catalog
from app.core.download import (
    Downloader,
    HubClient,
    ModelStore,
    OfflineError,
    RetryPolicy,
    get_token,
)
from app.core.hardware.devices import Device, HardwareReport
from app.core.hardware.planner import BADGE_TEXT, catalog_candidates, fit
from app.core.storage.settings import Settings
from app.services.hardware_probe import HardwareProbe, machine_from_report
from app.ui.model_context import ModelsContext
from app.ui.model_list import LOCAL_PREFIX
from app.ui.model_manager import ModelManagerDialog
from app.ui.model_rows import AVAILABLE, INSTALLED, PAUSED, RUNNING
from tests.fixtures.hub_server import LocalHub, local_hub, random_file  # noqa: F401

G = 1024**3
E2B_REPO = "ggml-org/gemma-4-E2B-it-GGUF"
E2B_FILE = "gemma-4-E2B-it-Q8_0.gguf"
E2B_PROJ = "mmproj-gemma-4-E2B-it-bf16.gguf"
MODEL_SIZE = 12 * (1 << 20) + 11
PROJ_SIZE = 2 * (1 << 20) + 5
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def gpu_report(vram_gib: float = 12, ram_gib: float = 16, offload: bool = True) -> HardwareReport:
    gpu = (Device(1, "CUDA0", "NVIDIA GeForce RTX 4070", "gpu", int(vram_gib * G),
                  int(vram_gib * G)),) if vram_gib else ()
    return HardwareReport(devices=(Device(0, "CPU", "AMD Ryzen", "cpu", int(ram_gib * G),
                                          int(ram_gib * G)),) + gpu,
                          gpu_offload=offload, ram_total=int(ram_gib * G),
                          ram_available=int(ram_gib * G), disk_free=410 * G)


def make_store(hub: LocalHub, root: Path) -> ModelStore:
    retry = RetryPolicy(backoff_s=0.02, read_timeout_s=5.0)
    return ModelStore(root, Downloader(HubClient(hub.endpoint), retry, progress_interval=0.0))


def make_context(hub: LocalHub, root: Path, report: HardwareReport | None = None,
                 settings: Settings | None = None) -> ModelsContext:
    probe = HardwareProbe()
    probe.set_report(report or gpu_report())
    return ModelsContext(settings or Settings(), store=make_store(hub, root), probe=probe)


@pytest.fixture
def hub(local_hub: LocalHub, tmp_path: Path) -> LocalHub:  # noqa: F811
    local_hub.add_repo(E2B_REPO, {
        E2B_FILE: random_file(tmp_path / "src" / E2B_FILE, MODEL_SIZE, seed=1),
        E2B_PROJ: random_file(tmp_path / "src" / E2B_PROJ, PROJ_SIZE, seed=2),
    })
    return local_hub


@pytest.fixture
def ctx(hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # restored after the test
    context = make_context(hub, tmp_path / "models")
    yield context
    context.shutdown()


@pytest.fixture
def dialog(qtbot, ctx: ModelsContext) -> ModelManagerDialog:
    dlg = ModelManagerDialog(ctx, refresh_on_open=False)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def answer_modal(handle: Callable[[QWidget], None]) -> None:
    """Answer the next modal dialog (token prompt, delete confirmation) once it is up."""
    def poll() -> None:
        widget = QApplication.activeModalWidget()
        if widget is None:
            QTimer.singleShot(20, poll)
            return
        handle(widget)

    QTimer.singleShot(0, poll)


def test_rows_show_every_entry_with_size_memory_fit_badge_and_one_recommendation(dialog):
    ctx = dialog.ctx
    catalog = load_catalog()
    assert set(dialog._rows) == {e.id for e in catalog.entries()}
    machine = machine_from_report(gpu_report())
    cands = {c.model_id: c for c in catalog_candidates(catalog, official_only=False)}
    for entry in catalog.entries():
        row = dialog.row(entry.id)
        plan = fit(cands[entry.id], machine, 8192)
        assert row.badge.text() == BADGE_TEXT[plan.badge]
        assert "at 8k context" in row.detail.text()
        assert row.state == AVAILABLE and row.buttons["download"].isVisible()
    # 12 GB GPU: the small sizes fit entirely, the MoE is split (and is the pick), 31B Q8_0 does not fit.
    assert dialog.row("E4B-Q4_K_M").badge.text() == "fully on GPU"
    assert dialog.row("26B-A4B-Q4_K_M").badge.text() == "partly offloaded"
    assert dialog.row("31B-Q8_0").badge.text() == "does not fit"
    recommended = [k for k, r in dialog._rows.items() if r.recommended_tag.isVisible()]
    assert recommended == ["26B-A4B-Q4_K_M"] == [ctx.recommendation().candidate.model_id]
    assert dialog.hardware.text().startswith("NVIDIA GeForce RTX 4070, 12 GB free of 12 GB")
    assert not dialog.warning.isVisible()
    # A longer context needs more memory.
    before = dialog.row("E4B-Q4_K_M").detail.text()
    dialog.ctx_combo.setCurrentIndex(dialog.ctx_combo.findData(32768))
    after = dialog.row("E4B-Q4_K_M").detail.text()
    assert "at 32k context" in after and after != before


def test_cpu_only_machine_gets_cpu_badges_and_a_gpu_warning(qtbot, hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    report = gpu_report(vram_gib=0, ram_gib=32)
    report = HardwareReport(**{**report.__dict__, "detected_gpus": ("NVIDIA GeForce RTX 4070",),
                               "warning": "This machine has a NVIDIA GeForce RTX 4070 GPU, but "
                               "the installed llama.cpp was built without support for it, so "
                               "models would run on the CPU only. Reinstall it with GPU support: X",
                               "reinstall_command": 'CMAKE_ARGS="-DGGML_CUDA=on" pip install x'})
    ctx = make_context(hub, tmp_path / "models", report)
    dlg = ModelManagerDialog(ctx, refresh_on_open=False)
    qtbot.addWidget(dlg)
    dlg.show()
    try:
        assert {dlg.row(e.id).badge.text() for e in ctx.catalog.entries()} <= {
            "CPU only", "does not fit"}
        assert dlg.row("E4B-Q8_0").recommended_tag.isVisible()
        assert dlg.warning.isVisible()
        assert dlg.warning.command.text() == 'CMAKE_ARGS="-DGGML_CUDA=on" pip install x'
    finally:
        ctx.shutdown()


def test_download_shows_progress_then_installed_and_use_loads_with_the_plan(qtbot, dialog, hub):
    ctx, row = dialog.ctx, dialog.row("E2B-Q8_0")
    progress: list[tuple[int, int]] = []
    row.buttons["download"].click()
    job = ctx.job("E2B-Q8_0")
    assert job is not None and row.state == RUNNING
    job.sig_progress.connect(lambda d, t, *_: progress.append((d, t)))
    qtbot.waitUntil(lambda: row.state == INSTALLED, timeout=30_000)
    assert progress and progress[-1] == (MODEL_SIZE + PROJ_SIZE, MODEL_SIZE + PROJ_SIZE)
    assert {m.filename for m in ctx.store.installed()} == {E2B_FILE, E2B_PROJ}
    assert row.installed_tag.isVisible() and row.buttons["use"].isVisible()
    with qtbot.waitSignal(ctx.sig_use_requested) as used:
        row.buttons["use"].click()
    path, mmproj, n_ctx, layers = used.args
    assert path == str(ctx.store.path_for(E2B_REPO, E2B_FILE))
    assert mmproj == str(ctx.store.path_for(E2B_REPO, E2B_PROJ))
    plan = ctx.plan("E2B-Q8_0", 8192)
    assert (n_ctx, layers) == (8192, plan.n_gpu_layers) and layers == -1  # fully on the GPU


def test_pause_resume_cancel_and_resume_after_a_restart(qtbot, dialog, hub, tmp_path):
    ctx, row = dialog.ctx, dialog.row("E2B-Q8_0")
    hub.add_fault(E2B_FILE, stall_after=3_000_000, stall_s=1.0)
    row.buttons["download"].click()
    job = ctx.job("E2B-Q8_0")
    qtbot.waitUntil(lambda: job.last_progress[0] >= 3_000_000, timeout=10_000)
    assert "MB/s" in row.progress_text.text() or "KB/s" in row.progress_text.text()
    SCREENSHOTS.mkdir(exist_ok=True)
    QApplication.processEvents()
    dialog.grab().save(str(SCREENSHOTS / "model-manager-downloading.png"))
    with qtbot.waitSignal(job.sig_paused, timeout=10_000):
        row.buttons["pause"].click()
    assert row.state == PAUSED and row.buttons["resume"].isVisible()
    assert row.progress_text.text().startswith("Paused — resume")
    SCREENSHOTS.mkdir(exist_ok=True)
    QApplication.processEvents()  # the row's buttons re-laid out before the picture
    dialog.grab().save(str(SCREENSHOTS / "model-manager-paused.png"))
    kept = ctx.store.partial_bytes(E2B_REPO, E2B_FILE)
    assert 0 < kept < MODEL_SIZE
    with qtbot.waitSignal(job.sig_finished, timeout=30_000):
        row.buttons["resume"].click()
    assert hub.gets(E2B_FILE)[-1].start == kept  # only the missing bytes
    qtbot.waitUntil(lambda: row.state == INSTALLED, timeout=5000)

    # Delete it, start again, pause, and "restart the app": a new context and dialog.
    answer_modal(lambda box: next(b for b in box.buttons() if b.text() == "Delete").click())
    row.buttons["delete"].click()
    assert row.state == AVAILABLE and not ctx.store.installed()
    hub.add_fault(E2B_FILE, stall_after=2_000_000, stall_s=1.0)
    row.buttons["download"].click()
    job = ctx.job("E2B-Q8_0")
    qtbot.waitUntil(lambda: job.last_progress[0] >= 2_000_000, timeout=10_000)
    with qtbot.waitSignal(job.sig_paused, timeout=10_000):
        row.buttons["pause"].click()
    kept = ctx.store.partial_bytes(E2B_REPO, E2B_FILE)
    ctx.shutdown()
    dialog.close()
    ctx2 = make_context(hub, tmp_path / "models")
    dlg2 = ModelManagerDialog(ctx2, refresh_on_open=False)
    qtbot.addWidget(dlg2)
    dlg2.show()
    try:
        row2 = dlg2.row("E2B-Q8_0")
        assert row2.state == PAUSED and row2.progress_text.text().startswith("Paused — resume")
        row2.buttons["resume"].click()
        qtbot.waitUntil(lambda: row2.state == INSTALLED, timeout=30_000)
        assert hub.gets(E2B_FILE)[-1].start == kept
        # Cancel of a paused download discards its partial files.
        ctx2.remove("E2B-Q8_0")
        hub.add_fault(E2B_FILE, stall_after=1_000_000, stall_s=1.0)
        dlg2.update_rows()
        row2.buttons["download"].click()
        job2 = ctx2.job("E2B-Q8_0")
        qtbot.waitUntil(lambda: job2.last_progress[0] >= 1_000_000, timeout=10_000)
        with qtbot.waitSignal(job2.sig_cancelled, timeout=10_000):
            row2.buttons["cancel"].click()
        assert ctx2.store.partial_bytes(E2B_REPO, E2B_FILE) == 0 and row2.state == AVAILABLE
    finally:
        ctx2.shutdown()


def test_delete_asks_first_and_cancel_keeps_the_files(qtbot, dialog):
    ctx, row = dialog.ctx, dialog.row("E2B-Q8_0")
    for name in (E2B_FILE, E2B_PROJ):
        ctx.store.download(E2B_REPO, name)
    dialog.update_rows()
    assert row.state == INSTALLED
    answer_modal(lambda box: box.button(QMessageBox.StandardButton.Cancel).click())
    row.buttons["delete"].click()
    assert ctx.store.find(E2B_REPO, E2B_FILE) is not None and row.state == INSTALLED
    answer_modal(lambda box: next(b for b in box.buttons() if b.text() == "Delete").click())
    row.buttons["delete"].click()
    assert ctx.store.installed() == [] and row.state == AVAILABLE
    assert not (ctx.store.root / E2B_REPO.replace("/", "__")).exists()


def test_gated_repo_asks_for_a_token_saves_it_and_retries(qtbot, hub, dialog, tmp_path):
    repo = "ggml-org/gemma-4-E4B-it-GGUF"
    hub.add_repo(repo, {
        "gemma-4-E4B-it-Q4_K_M.gguf": random_file(tmp_path / "g" / "m.gguf", 1_000_000, seed=3),
        "mmproj-gemma-4-E4B-it-bf16.gguf": random_file(tmp_path / "g" / "p.gguf", 200_000, seed=4),
    }, gated=True)
    asked: list[str] = []

    def give_token(widget: QWidget) -> None:
        assert isinstance(widget, QInputDialog) and widget.objectName() == "TokenDialog"
        asked.append(widget.labelText())
        widget.setTextValue(hub.token)
        widget.accept()

    answer_modal(give_token)
    row = dialog.row("E4B-Q4_K_M")
    row.buttons["download"].click()
    qtbot.waitUntil(lambda: row.state == INSTALLED, timeout=30_000)
    assert asked and "gated" in asked[0]
    assert get_token() == hub.token
    assert any(s.authorized for s in hub.gets("gemma-4-E4B-it-Q4_K_M.gguf"))


def test_import_a_gguf_with_its_projector_and_refuse_a_bad_file(qtbot, dialog, tmp_path):
    from tests.fixtures.gemma4 import synthetic_gemma4

    ctx = dialog.ctx
    files = synthetic_gemma4()
    task = dialog.import_file(str(files["model"]))
    with qtbot.waitSignal(task.sig_finished, timeout=60_000):
        pass
    key = LOCAL_PREFIX + files["model"].name
    qtbot.waitUntil(lambda: key in dialog._rows, timeout=5000)
    row = dialog.row(key)
    assert "with its image/audio projector" in row.detail.text()
    assert "Imported" in dialog.notice.text()
    with qtbot.waitSignal(ctx.sig_use_requested) as used:
        row.buttons["use"].click()
    assert used.args[0] == str(ctx.store.root / "local" / files["model"].name)
    assert used.args[1] == str(ctx.store.root / "local" / files["mmproj"].name)

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4000))
    task = dialog.import_file(str(bad))
    with qtbot.waitSignal(task.sig_failed, timeout=30_000) as failed:
        pass
    assert failed.args[0].startswith("broken.gguf:") and dialog.notice.text() == failed.args[0]
    assert ctx.store.find("local", "broken.gguf") is None


def test_add_another_repository(qtbot, hub, dialog, tmp_path):
    repo = "unsloth/gemma-4-E4B-it-GGUF"
    hub.add_repo(repo, {
        "gemma-4-E4B-it-Q5_K_M.gguf": random_file(tmp_path / "u" / "m.gguf", 500_000, seed=7),
        "mmproj-F16.gguf": random_file(tmp_path / "u" / "p.gguf", 100_000, seed=8),
    })
    task = dialog.add_repository(repo, "E4B")
    with qtbot.waitSignal(task.sig_finished, timeout=30_000):
        pass
    key = f"{repo}:Q5_K_M"
    assert key in dialog._rows
    assert dialog.row(key).repo.text() == repo and dialog.notice.text() == f"Added {repo}."


def test_offline_switch_connects_nothing_and_the_catalog_stays_cached(qtbot, dialog, hub, tmp_path):
    ctx = dialog.ctx
    # Online: refresh the list from the hub (the E2B repo's real sizes) -> cached.
    task = dialog.refresh_catalog()
    with qtbot.waitSignal(task.sig_finished, timeout=30_000):
        pass
    assert ctx.catalog.entry("E2B-Q8_0").file.size == MODEL_SIZE
    dialog.offline.setChecked(True)
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and ctx.settings.offline is True
    assert not dialog.row("E2B-Q8_0").buttons["download"].isEnabled()
    assert not dialog.refresh_button.isEnabled() and dialog.refresh_catalog() is None
    served = len(hub.requests())
    with pytest.raises(OfflineError):
        ctx.download("E2B-Q8_0")
    # A fresh start while offline still lists the refreshed sizes, without asking the hub.
    ctx2 = make_context(hub, tmp_path / "models2")
    assert ctx2.catalog.entry("E2B-Q8_0").file.size == MODEL_SIZE
    assert len(hub.requests()) == served
    dialog.offline.setChecked(False)
    assert "HF_HUB_OFFLINE" not in os.environ and ctx.settings.offline is False
    ctx2.shutdown()


def test_window_models_action_opens_the_manager(qtbot, tmp_path, monkeypatch):
    from app.core.chat.session import ChatSession
    from app.core.storage.history import HistoryStore
    from app.ui.main_window import MainWindow
    from tests.qt.screenshots import FakeEngineClient, make_settings

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no Hub refresh on open: this test is about the action
    store = HistoryStore(tmp_path / "h.db")
    window = MainWindow(make_settings(), store, ChatSession(store), FakeEngineClient())
    qtbot.addWidget(window)
    window.models_context().probe.set_report(gpu_report())
    assert window.models_action.shortcut().toString() == "Ctrl+M"
    window.models_action.trigger()
    dlg = window.models.dialog
    try:
        assert isinstance(dlg, ModelManagerDialog) and dlg.isVisible()
        window.models_action.trigger()
        assert window.models.dialog is dlg  # one manager, raised again
    finally:
        dlg.task and dlg.task.wait(10)
        window.close()
        store.close()


def test_predicted_speed_on_every_fitting_row_and_on_the_welcome_pick(qtbot, hub, tmp_path):
    """With measured machine speeds every fitting row says '≈ N tok/s here', the welcome pick
    too, and a model that answered shows its measured figure beside the prediction."""
    from app.core.hardware.speed import GpuSpeed, MachineSpeed, record_answer_speed
    from app.ui.welcome import WelcomePane

    shots = Path("/tmp/shots")
    shots.mkdir(exist_ok=True)
    context = make_context(hub, tmp_path / "models", gpu_report(vram_gib=12, ram_gib=32))
    context.probe.set_speed(MachineSpeed("test", 40e9, 70e9, 17e9, 4,
                                         (GpuSpeed("NVIDIA GeForce RTX 4070", 500e9, True),)))
    record_answer_speed(str(tmp_path / E2B_FILE), {"decode_tok_s": 41.3, "completion_tokens": 64})
    dlg = ModelManagerDialog(context, refresh_on_open=False)
    qtbot.addWidget(dlg)
    dlg.resize(1000, 760)
    dlg.show()
    qtbot.waitExposed(dlg)
    for key, row in dlg._rows.items():
        fits = row.badge.text() != "does not fit"
        assert ("tok/s here" in row.detail.text()) == fits, (key, row.detail.text())
    assert "measured 41.3" in dlg.row("E2B-Q8_0").detail.text()
    fast = dlg.row("E4B-Q4_K_M").detail.text().split("≈ ")[1].split(" ")[0]
    slow = dlg.row("E4B-Q8_0").detail.text().split("≈ ")[1].split(" ")[0]
    assert int(fast) > int(slow)
    dlg.grab().save(str(shots / "model-manager-predictions.png"))
    pane = WelcomePane(context)
    qtbot.addWidget(pane)
    pane.resize(1000, 760)
    pane.show()
    plan = context.recommendation()
    assert plan.predicted_decode_tok_s is not None and plan.predicted_decode_tok_s >= 8
    assert "tok/s here" in pane.pick_name.text() and pane.reason.text() == plan.explanation
    pane.grab().save(str(shots / "welcome-predictions.png"))
    context.shutdown()
