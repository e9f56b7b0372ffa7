"""The first-start welcome screen: real hardware probe, the planner's pick, the GPU warning, and a
one-click download from the local hub (under the official repo name, via HF_ENDPOINT) that ends
with the real engine holding the synthetic Gemma 4 and the window showing the chat.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QStackedWidget

from app.core.chat.session import ChatSession
from app.core.hardware.devices import HardwareReport
from app.core.hardware.planner import Machine, catalog_candidates, recommend
from app.core.storage.history import HistoryStore
from app.core.storage.settings import Settings
from app.services.hardware_probe import HardwareProbe, machine_from_report
from app.ui import theme
from app.ui.main_window import MainWindow
from app.ui.model_context import ModelsContext
from app.ui.welcome import WelcomePane, install_welcome
from tests.fixtures.hub_server import LocalHub, local_hub  # noqa: F401
from tests.qt.screenshots import FakeEngineClient, make_settings

G = 1024**3
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
E2B_REPO = "ggml-org/gemma-4-E2B-it-GGUF"
E2B_FILE = "gemma-4-E2B-it-Q8_0.gguf"
E2B_PROJ = "mmproj-gemma-4-E2B-it-bf16.gguf"


def cpu_report(ram_gib: float, warn: bool = False) -> HardwareReport:
    extra = {}
    if warn:
        extra = {"detected_gpus": ("NVIDIA GeForce RTX 4070",),
                 "warning": "This machine has a NVIDIA GeForce RTX 4070 GPU, but the installed "
                 "llama.cpp was built without support for it, so models would run on the CPU "
                 "only. Reinstall it with GPU support: CMD",
                 "reinstall_command": 'CMAKE_ARGS="-DGGML_CUDA=on" python -m pip install '
                 "--force-reinstall --no-cache-dir llama-cpp-python==0.3.36"}
    return HardwareReport(gpu_offload=False, ram_total=int(ram_gib * G),
                          ram_available=int(ram_gib * G), disk_free=410 * G, **extra)


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_real_probe_runs_off_the_gui_thread_and_names_the_hardware(qtbot):
    ctx = ModelsContext(Settings(), probe=HardwareProbe())
    pane = WelcomePane(ctx)  # starts the probe (a child process, waited for on a worker thread)
    qtbot.addWidget(pane)
    try:
        assert pane.hardware.text() == "Looking at this computer…"
        assert not pane.download_button.isEnabled()
        qtbot.waitUntil(lambda: ctx.probe.report is not None, timeout=60_000)
        report = ctx.probe.report
        assert pane.hardware.text().lower() == report.summary().lower() and "GB RAM" in report.summary()
        # The probe also measured this machine's speed: the pick is the speed-aware one.
        assert ctx.probe.speed is not None
        plan = recommend(catalog_candidates(ctx.catalog), machine_from_report(report),
                         speed=ctx.probe.speed)
        assert pane.reason.text() == plan.explanation
    finally:
        ctx.shutdown()


def test_recommends_one_model_with_its_reason_and_shows_the_gpu_warning(qtbot):
    probe = HardwareProbe()
    probe.set_report(cpu_report(32, warn=True))
    settings = Settings()
    ctx = ModelsContext(settings, probe=probe)
    pane = WelcomePane(ctx)
    qtbot.addWidget(pane)
    pane.resize(1000, 760)
    pane.show()
    assert pane.hardware.text() == "No usable GPU · 32 GB RAM · 410 GB free disk"
    assert pane.pick_name.text() == "Gemma 4 E4B · Q8_0"
    assert pane.reason.text() == ("E4B Q8_0, 32k context, on the CPU: the strongest model that "
                                  "runs well without a GPU")
    assert pane.download_button.text() == "Download (9.0 GB)" and pane.download_button.isEnabled()
    assert pane.warning.isVisible() and "built without support" in pane.warning.text.text()
    pane.copy_button.click()
    assert QApplication.clipboard().text() == cpu_report(32, True).reinstall_command
    SCREENSHOTS.mkdir(exist_ok=True)
    pane.grab().save(str(SCREENSHOTS / "welcome-gpu-warning.png"))
    # Offline: nothing to download, and it says what to do instead.
    ctx.set_offline(True)
    assert not pane.download_button.isEnabled() and "Offline mode is on" in pane.status.text()
    with qtbot.waitSignal(pane.sig_open_file_requested):
        pane.open_link.click()
    ctx.shutdown()


def test_window_shows_welcome_until_a_model_is_loaded(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the manager opened below must not refresh
    store = HistoryStore(tmp_path / "h.db")
    client = FakeEngineClient()
    window = MainWindow(make_settings(), store, ChatSession(store), client)
    qtbot.addWidget(window)
    ctx = window.models_context()
    ctx.probe.set_report(cpu_report(16))
    pane = install_welcome(window, ctx, client)
    window.show()
    stack = window.centralWidget()
    assert isinstance(stack, QStackedWidget) and stack.currentWidget() is pane
    previous = window.theme_manager.theme
    window.set_theme("dark")  # the pane follows the theme
    try:
        assert theme.palette_colors("dark")["surface"] in pane.styleSheet()
        QApplication.processEvents()
        window.grab().save(str(SCREENSHOTS / "welcome-dark.png"))
    finally:
        window.set_theme(previous)
    assert theme.palette_colors("light")["surface"] in pane.styleSheet()
    pane.browse_link.click()
    assert window.models.dialog is not None and window.models.dialog.isVisible()
    window.models.dialog.close()
    client.loaded()
    assert stack.currentIndex() == 0 and window.splitter.isVisible()
    window.close()
    store.close()


def test_one_click_download_verifies_loads_and_lands_in_the_chat(
    qtbot, tmp_path, monkeypatch, local_hub: LocalHub  # noqa: F811
):
    from app.services.engine_client import EngineClient
    from tests.fixtures.gemma4 import synthetic_gemma4

    files = synthetic_gemma4()
    local_hub.add_repo(E2B_REPO, {E2B_FILE: files["model"], E2B_PROJ: files["mmproj"]})
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    # Slow the model file once mid-way, so the screenshot shows a download in progress.
    local_hub.add_fault(E2B_FILE, stall_after=files["model"].stat().st_size // 3, stall_s=1.5)

    store = HistoryStore(tmp_path / "h.db")
    client = EngineClient()
    settings = make_settings()
    window = MainWindow(settings, store, ChatSession(store), client)
    qtbot.addWidget(window)
    try:
        ctx = window.models_context()
        ctx.probe.set_report(cpu_report(8))  # 8 GB, no GPU: the planner picks E2B Q8_0
        task = ctx.refresh_task()  # real sizes and sha256 from the (local) Hub
        with qtbot.waitSignal(task.sig_finished, timeout=30_000):
            task.start()
        pane = install_welcome(window, ctx, client)
        window.resize(1200, 800)
        window.show()
        plan = recommend(catalog_candidates(ctx.catalog), Machine(ram_available=8 * G,
                                                                   ram_total=8 * G,
                                                                   disk_free=410 * G))
        assert pane.entry_id == "E2B-Q8_0" == plan.candidate.model_id
        total = files["model"].stat().st_size + files["mmproj"].stat().st_size
        assert pane.download_button.text().startswith("Download (")

        # Every status the pane shows is recorded as it is set: on a busy machine several queued
        # progress reports can be painted in one event-loop pass, so polling the label could
        # miss a state the user did see.
        shown: list[str] = []
        set_text = pane.status.setText

        def record(text: str) -> None:
            set_text(text)
            if " of " in text and "/s" in text and not any("/s" in t for t in shown):
                window.grab().save(str(SCREENSHOTS / "welcome-downloading.png"))
            shown.append(text)

        pane.status.setText = record
        pane.download_button.click()
        assert pane.pause_button.isVisible() and pane.progress.isVisible()
        qtbot.waitUntil(lambda: any(" of " in t and "/s" in t for t in shown), timeout=30_000)
        with qtbot.waitSignal(client.sig_loaded, timeout=180_000) as loaded:
            pass
        info = loaded.args[0]
        model_path = ctx.store.path_for(E2B_REPO, E2B_FILE)
        assert info["path"] == str(model_path) and info["arch"] == "gemma4"
        assert info["supports_vision"] and info["supports_audio"]
        assert info["n_ctx"] == plan.n_ctx
        assert model_path.read_bytes() == files["model"].read_bytes()
        entry = ctx.store.find(E2B_REPO, E2B_FILE)
        assert entry is not None and entry.sha256 == local_hub.sha256(E2B_REPO, E2B_FILE)
        assert ctx.store.find(E2B_REPO, E2B_PROJ) is not None
        assert settings.model_path == str(model_path)
        assert settings.mmproj_path == str(ctx.store.path_for(E2B_REPO, E2B_PROJ))
        assert window.centralWidget().currentIndex() == 0  # the chat
        # The settings dialog now plans with the probed machine too.
        assert window.settings_wiring.machine == ctx.machine()
        assert sum(s.sent for s in local_hub.gets()) >= total
    finally:
        client.shutdown()
        window.close()
        store.close()


def test_first_start_lists_the_hub_once_a_day_and_the_pick_follows_it(
    qtbot, tmp_path, monkeypatch, local_hub: LocalHub  # noqa: F811
):
    """The shipped catalog is approximate: at first start the app lists the Hub in the background
    (once a day, never offline) and the welcome pick is planned again with the listed files. A
    curated community repo lists every quant it publishes, yet lends the recommendation only the
    Q4 it was chosen for."""
    from app.core.catalog import listing_age
    from app.core.hardware.speed import MachineSpeed
    from app.ui.model_rows import file_size
    from tests.fixtures.hub_server import random_file

    repo = "unsloth/gemma-4-E2B-it-GGUF"
    names = ("gemma-4-E2B-it-Q4_K_M.gguf", "gemma-4-E2B-it-Q8_0.gguf", "gemma-4-E2B-it-BF16.gguf",
             "mmproj-F16.gguf")
    local_hub.add_repo(repo, {n: random_file(tmp_path / "src" / n, 3000 + 100 * i, seed=i)
                              for i, n in enumerate(names)})
    monkeypatch.setenv("HF_ENDPOINT", local_hub.endpoint)
    probe = HardwareProbe()
    probe.set_report(cpu_report(8))
    # A CPU on which a Q4 E2B reaches the 8 tok/s floor and the shipped Q8_0 does not.
    probe.set_speed(MachineSpeed("test", bandwidth=25e9, core_rate=70e9, core_flops=17e9,
                                 cpu_threads=4))
    ctx = ModelsContext(Settings(), probe=probe)
    pane = WelcomePane(ctx)
    qtbot.addWidget(pane)
    try:
        pick = f"{repo}:Q4_K_M"
        assert pane.entry_id == pick, pane.reason.text()
        shipped = ctx.catalog.entry(pick)
        assert shipped.file.size == 3_106_736_256 and shipped.mmproj.filename == "mmproj-F16.gguf"
        assert pane.download_button.text() == f"Download ({file_size(ctx.download_bytes(shipped))})"
        assert "Q8_0 would be ≈ " in pane.reason.text()

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert ctx.refresh_if_stale() is None and listing_age() is None  # offline: no listing
        monkeypatch.delenv("HF_HUB_OFFLINE")
        task = ctx.refresh_if_stale()
        assert task is not None
        with qtbot.waitSignal(ctx.sig_catalog_changed, timeout=60_000):
            pass
        assert listing_age() is not None and ctx.refresh_if_stale() is None  # not again today

        listed = ctx.catalog.entry(pick)
        assert listed.file.size == (tmp_path / "src" / names[0]).stat().st_size
        assert pane.entry_id == pick  # the refreshed Q4 is still the one that meets the floor
        assert pane.download_button.text() == f"Download ({file_size(ctx.download_bytes(listed))})"
        # Every quant the repo publishes is in the catalog; only its Q4 may be recommended.
        shown = {e.id for e in ctx.catalog.entries()}
        offered = {e.id for e in ctx.catalog.entries(official_only=True)}
        assert {f"{repo}:Q8_0", f"{repo}:BF16", pick} <= shown
        assert pick in offered and not {f"{repo}:Q8_0", f"{repo}:BF16"} & offered
    finally:
        ctx.shutdown()
