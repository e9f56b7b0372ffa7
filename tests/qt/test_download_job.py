"""DownloadJob/DownloadManager signals against the local hub: progress, pause/resume, cancel, failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.download import Downloader, HubClient, ModelStore, RetryPolicy
from app.services.downloads import DownloadJob, DownloadManager, JobState
from tests.fixtures.hub_server import LocalHub, local_hub, random_file  # noqa: F401

REPO = "ggml-org/gemma-test-GGUF"
MODEL = 12 * (1 << 20) + 7
PROJ = 2 * (1 << 20) + 3


@pytest.fixture
def store(local_hub: LocalHub, tmp_path: Path) -> ModelStore:  # noqa: F811
    local_hub.add_repo(REPO, {
        "model.gguf": random_file(tmp_path / "src" / "model.gguf", MODEL, seed=5),
        "mmproj.gguf": random_file(tmp_path / "src" / "mmproj.gguf", PROJ, seed=6),
    })
    downloader = Downloader(
        HubClient(local_hub.endpoint), RetryPolicy(backoff_s=0.02, read_timeout_s=1.0),
        progress_interval=0.0,
    )
    return ModelStore(tmp_path / "models", downloader)


FILES = [(REPO, "model.gguf", "main"), (REPO, "mmproj.gguf", "main")]


def test_model_and_projector_download_as_one_job(qtbot, store: ModelStore):
    job = DownloadJob(store, FILES)
    progress: list[tuple[int, int, float, float]] = []
    job.sig_progress.connect(lambda *a: progress.append(a))
    with qtbot.waitSignal(job.sig_finished, timeout=30_000) as blocker:
        job.start()
    assert blocker.args == [str(store.path_for(REPO, "model.gguf"))]
    assert job.state is JobState.FINISHED and job.wait(1)
    assert {m.filename for m in store.installed()} == {"model.gguf", "mmproj.gguf"}
    dones = [p[0] for p in progress]
    assert dones == sorted(dones) and dones[-1] == MODEL + PROJ
    assert all(p[1] == MODEL + PROJ for p in progress)


def test_pause_resume_cancel(qtbot, store: ModelStore, local_hub: LocalHub):  # noqa: F811
    local_hub.add_fault("model.gguf", stall_after=3_000_000, stall_s=0.4)  # slow it mid-file
    store.downloader.retry.read_timeout_s = 5.0
    job = DownloadJob(store, FILES)
    with qtbot.waitSignal(job.sig_progress, timeout=10_000,
                          check_params_cb=lambda done, *_: done >= 3_000_000):
        job.start()
    with qtbot.waitSignal(job.sig_paused, timeout=10_000):
        job.pause()
    assert job.state is JobState.PAUSED
    kept = store.partial_bytes(REPO, "model.gguf")
    assert 0 < kept < MODEL

    with qtbot.waitSignal(job.sig_finished, timeout=30_000):
        job.resume()
    assert local_hub.gets("model.gguf")[-1].start == kept
    assert store.find(REPO, "model.gguf") is not None

    # Cancel a second, paused job: its partial file goes away.
    store.remove(REPO, "model.gguf")
    local_hub.add_fault("model.gguf", stall_after=1_000_000, stall_s=0.4)
    job2 = DownloadJob(store, FILES)
    with qtbot.waitSignal(job2.sig_progress, timeout=10_000,
                          check_params_cb=lambda done, *_: done >= 1_000_000):
        job2.start()
    with qtbot.waitSignal(job2.sig_paused, timeout=10_000):
        job2.pause()
    assert store.partial_bytes(REPO, "model.gguf") > 0
    with qtbot.waitSignal(job2.sig_cancelled, timeout=1000):
        job2.cancel()
    assert store.partial_bytes(REPO, "model.gguf") == 0


def test_cancel_while_running(qtbot, store: ModelStore, local_hub: LocalHub):  # noqa: F811
    local_hub.add_fault("model.gguf", stall_after=1_000_000, stall_s=0.5)
    job = DownloadJob(store, FILES)
    with qtbot.waitSignal(job.sig_progress, timeout=10_000):
        job.start()
    with qtbot.waitSignal(job.sig_cancelled, timeout=10_000):
        job.cancel()
    assert job.state is JobState.CANCELLED and store.partial_bytes(REPO, "model.gguf") == 0


def test_failure_is_a_message_and_resume_retries(qtbot, store: ModelStore, local_hub: LocalHub):  # noqa: F811
    local_hub.add_fault("mmproj.gguf", corrupt=True)
    job = DownloadJob(store, FILES)
    with qtbot.waitSignal(job.sig_failed, timeout=30_000) as blocker:
        job.start()
    assert "mmproj.gguf" in blocker.args[0] and "deleted" in blocker.args[0]
    assert job.state is JobState.FAILED
    before = local_hub.bytes_served("model.gguf")
    with qtbot.waitSignal(job.sig_finished, timeout=30_000):
        job.resume()
    assert local_hub.bytes_served("model.gguf") == before  # the verified model is not fetched again


def test_manager_reuses_a_live_job_and_sizes_beyond_2gib_fit_the_signal(
    qtbot, store: ModelStore
):
    manager = DownloadManager(store)
    job = manager.download("e2b-q4", FILES, start=False)
    assert manager.download("e2b-q4", FILES, start=False) is job
    got: list[tuple] = []
    job.sig_progress.connect(lambda *a: got.append(a))
    job._signals.sig_progress.emit(job._generation, 5 << 30, 6 << 30, 1e6, 3.0)
    qtbot.waitUntil(lambda: bool(got), timeout=1000)
    assert got[0][:2] == (5 << 30, 6 << 30)
    with qtbot.waitSignal(job.sig_finished, timeout=30_000):
        job.start()
    manager.shutdown()
