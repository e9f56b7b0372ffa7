"""The real downloader against a real HTTP server on 127.0.0.1 that answers like the Hugging Face Hub."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from app.core.download import (
    AuthRequiredError,
    ChecksumError,
    DownloadCancelled,
    Downloader,
    DownloadPaused,
    HubClient,
    ModelStore,
    NetworkError,
    NotFoundError,
    OfflineError,
    Progress,
    RemoteRangeFile,
    RetryPolicy,
    save_token,
)
from tests.fixtures.hub_server import LocalHub, local_hub, random_file  # noqa: F401

REPO = "org/gemma-test-GGUF"
SIZE = 6 * (1 << 20) + 12345  # not a multiple of any block size


@pytest.fixture
def hub(local_hub: LocalHub, tmp_path: Path) -> LocalHub:  # noqa: F811
    local_hub.add_repo(REPO, {
        "model.gguf": random_file(tmp_path / "src" / "model.gguf", SIZE, seed=1),
        "mmproj.gguf": random_file(tmp_path / "src" / "mmproj.gguf", 300_000, seed=2),
    })
    return local_hub


def make_store(hub: LocalHub, root: Path, **retry: float) -> ModelStore:
    policy = RetryPolicy(backoff_s=0.02, read_timeout_s=1.0, max_retries=4)
    for key, value in retry.items():
        setattr(policy, key, value)
    return ModelStore(root, Downloader(HubClient(endpoint=hub.endpoint), policy))


def source_bytes(hub: LocalHub, name: str = "model.gguf") -> bytes:
    return (hub.root / REPO / name).read_bytes()


def test_full_download_is_verified_recorded_and_reports_progress(hub: LocalHub, tmp_path: Path):
    store = make_store(hub, tmp_path / "models")
    seen: list[Progress] = []
    path = store.download(REPO, "model.gguf", on_progress=seen.append)

    assert path.read_bytes() == source_bytes(hub)
    entry = store.find(REPO, "model.gguf")
    assert entry is not None and entry.sha256 == hub.sha256(REPO, "model.gguf")
    assert entry.size == SIZE and Path(entry.path) == path
    assert [m.filename for m in store.installed()] == ["model.gguf"]
    assert not list(path.parent.glob("*.part*"))
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == SIZE and seen[-1].total == SIZE
    # Throttled: a 6 MiB local download is well under a second, so only a few callbacks.
    assert len(seen) <= 10
    # Downloading again is a no-op: no body bytes are fetched.
    served = hub.bytes_served()
    assert store.download(REPO, "model.gguf") == path
    assert hub.bytes_served() == served


@pytest.mark.parametrize("offset", [1, 65_537, 3_000_001, SIZE - 1])
def test_dropped_connection_resumes_exactly_the_missing_bytes(
    hub: LocalHub, tmp_path: Path, offset: int
):
    hub.add_fault("model.gguf", drop_after=offset)
    path = make_store(hub, tmp_path / "models").download(REPO, "model.gguf")

    assert path.read_bytes() == source_bytes(hub)
    gets = hub.gets("model.gguf")
    assert [(g.start, g.sent) for g in gets] == [(0, offset), (offset, SIZE - offset)]
    assert hub.bytes_served("model.gguf") == SIZE


def test_several_drops_in_a_row_still_fetch_each_byte_once(hub: LocalHub, tmp_path: Path):
    for cut in (500_000, 700_000, 1_000_000):
        hub.add_fault("model.gguf", drop_after=cut)
    path = make_store(hub, tmp_path / "models").download(REPO, "model.gguf")
    assert path.read_bytes() == source_bytes(hub)
    assert [g.start for g in hub.gets("model.gguf")] == [0, 500_000, 1_200_000, 2_200_000]
    assert hub.bytes_served("model.gguf") == SIZE


def test_stalled_server_times_out_and_resumes(hub: LocalHub, tmp_path: Path):
    hub.add_fault("model.gguf", stall_after=2_000_000, stall_s=30)
    store = make_store(hub, tmp_path / "models", read_timeout_s=0.5)
    start = time.monotonic()
    path = store.download(REPO, "model.gguf")
    assert time.monotonic() - start < 10  # the read timeout fired, not the 30 s stall
    assert path.read_bytes() == source_bytes(hub)
    assert [g.start for g in hub.gets("model.gguf")] == [0, 2_000_000]


def test_5xx_is_retried_with_backoff(hub: LocalHub, tmp_path: Path):
    hub.add_fault("model.gguf", status=503, times=2)
    hub.add_fault("model.gguf", status=500, times=1, head_too=True)  # the HEAD is retried too
    path = make_store(hub, tmp_path / "models").download(REPO, "model.gguf")
    assert path.read_bytes() == source_bytes(hub)
    statuses = [s.status for s in hub.requests() if "/resolve/" in s.path]
    assert statuses.count(503) == 2 and statuses.count(500) == 1


def test_server_that_keeps_failing_gives_a_clear_error_and_keeps_the_partial(
    hub: LocalHub, tmp_path: Path
):
    hub.add_fault("model.gguf", drop_after=1_000_000)
    hub.add_fault("model.gguf", status=502, times=100)
    store = make_store(hub, tmp_path / "models", max_retries=2)
    with pytest.raises(NetworkError, match="Resume"):
        store.download(REPO, "model.gguf")
    assert store.partial_bytes(REPO, "model.gguf") == 1_000_000
    hub.clear_faults()
    store.download(REPO, "model.gguf")
    assert hub.bytes_served("model.gguf") == SIZE


def test_gated_repo_asks_for_a_token_then_works_with_the_stored_one(
    local_hub: LocalHub, tmp_path: Path  # noqa: F811
):
    local_hub.add_repo("google/gated", {"m.gguf": b"x" * 5000}, gated=True)
    store = make_store(local_hub, tmp_path / "models")
    with pytest.raises(AuthRequiredError, match="token") as err:
        store.download("google/gated", "m.gguf")
    assert err.value.status == 401 and not err.value.had_token

    save_token("hf_wrong")
    with pytest.raises(AuthRequiredError, match="accept the license") as err:
        store.download("google/gated", "m.gguf")
    assert err.value.status == 403 and err.value.had_token

    token_file = save_token(local_hub.token)
    assert token_file.is_relative_to(tmp_path)  # HF_HOME of this test, where huggingface_hub looks
    assert store.download("google/gated", "m.gguf").read_bytes() == b"x" * 5000


def test_missing_file_and_revision_are_404_with_plain_words(hub: LocalHub, tmp_path: Path):
    store = make_store(hub, tmp_path / "models")
    with pytest.raises(NotFoundError, match="nope.gguf .* not found"):
        store.download(REPO, "nope.gguf")
    with pytest.raises(NotFoundError, match="revision v9"):
        store.download(REPO, "model.gguf", revision="v9")
    # A GET-time 404 (file removed between HEAD and GET) is reported the same way.
    hub.add_fault("model.gguf", status=404)
    with pytest.raises(NotFoundError):
        store.download(REPO, "model.gguf")


def test_wrong_bytes_are_rejected_deleted_and_explained(hub: LocalHub, tmp_path: Path):
    hub.add_fault("model.gguf", corrupt=True)
    store = make_store(hub, tmp_path / "models")
    with pytest.raises(ChecksumError, match="deleted") as err:
        store.download(REPO, "model.gguf")
    assert err.value.expected == hub.sha256(REPO, "model.gguf")
    folder = store.path_for(REPO, "model.gguf").parent
    assert list(folder.iterdir()) == []
    assert store.installed() == []


def test_disk_too_small_is_refused_before_any_byte(hub: LocalHub, tmp_path: Path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    try:
        store = make_store(hub, mount / "models")
        with pytest.raises(Exception, match=r"Not enough free disk space .* needs 70 MiB .* 40 MiB is free"):
            store.download(REPO, "model.gguf")  # 6 MiB + 64 MiB reserve > 40 MiB
        assert hub.gets() == []
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_pause_keeps_the_partial_and_resume_fetches_the_rest(hub: LocalHub, tmp_path: Path):
    store = make_store(hub, tmp_path / "models")
    pause = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.done >= 2_000_000:
            pause.set()

    store.downloader.progress_interval = 0.0
    with pytest.raises(DownloadPaused) as err:
        store.download(REPO, "model.gguf", on_progress=on_progress, pause=pause)
    kept = store.partial_bytes(REPO, "model.gguf")
    assert kept == err.value.done and 2_000_000 <= kept < SIZE

    pause.clear()
    path = store.download(REPO, "model.gguf", pause=pause)
    assert path.read_bytes() == source_bytes(hub)
    assert hub.gets("model.gguf")[-1].start == kept
    # Only what the client read before pausing can be refetched: the socket buffers, not the file.
    assert hub.bytes_served("model.gguf") - SIZE <= hub.gets("model.gguf")[0].sent - kept


def test_cancel_deletes_the_partial(hub: LocalHub, tmp_path: Path):
    store = make_store(hub, tmp_path / "models")
    cancel = threading.Event()
    store.downloader.progress_interval = 0.0
    with pytest.raises(DownloadCancelled):
        store.download(
            REPO, "model.gguf", cancel=cancel,
            on_progress=lambda p: cancel.set() if p.done > 1_000_000 else None,
        )
    assert store.partial_bytes(REPO, "model.gguf") == 0
    assert list(store.path_for(REPO, "model.gguf").parent.iterdir()) == []


def test_offline_never_connects(hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = ModelStore(tmp_path / "models", Downloader(HubClient(hub.endpoint, offline=True)))
    with pytest.raises(OfflineError, match="offline"):
        store.download(REPO, "model.gguf")
    with pytest.raises(OfflineError):
        store.list_remote_files(REPO)
    with pytest.raises(OfflineError):
        RemoteRangeFile.from_hub(REPO, "model.gguf", hub=HubClient(hub.endpoint, offline=True))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        make_store(hub, tmp_path / "models").download(REPO, "model.gguf")
    with pytest.raises(OfflineError):
        RemoteRangeFile(hub.endpoint + f"/{REPO}/resolve/main/model.gguf")
    assert hub.requests() == [] and hub.connections == 0


def test_list_remote_files_gives_sizes_and_lfs_sha256(hub: LocalHub, tmp_path: Path):
    entries = make_store(hub, tmp_path / "models").list_remote_files(REPO)
    assert {(e.name, e.size, e.sha256) for e in entries} == {
        ("mmproj.gguf", 300_000, hub.sha256(REPO, "mmproj.gguf")),
        ("model.gguf", SIZE, hub.sha256(REPO, "model.gguf")),
    }


_CHILD = """
import sys
from pathlib import Path
from app.core.download import ModelStore
ModelStore(Path(sys.argv[1])).download(sys.argv[2], "model.gguf")
"""


def test_killed_process_resumes_after_restart(hub: LocalHub, tmp_path: Path):
    """A real child process downloads, is SIGKILLed mid-file, and a new process finishes the job."""
    import os
    import sys

    root = tmp_path / "models"
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "PYTHONPATH": str(Path.cwd())}
    hub.add_fault("model.gguf", stall_after=2_500_000, stall_s=60)  # hold the child mid-file
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), REPO], env=env)
    try:
        part = ModelStore(root).path_for(REPO, "model.gguf").with_name("model.gguf.part")
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size >= 2_500_000):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        child.kill()
    finally:
        child.wait(10)
    assert child.returncode == -9

    done = subprocess.run([sys.executable, "-c", _CHILD, str(root), REPO], env=env, timeout=60)
    assert done.returncode == 0
    assert (root / REPO.replace("/", "__") / "model.gguf").read_bytes() == source_bytes(hub)
    assert [g.start for g in hub.gets("model.gguf")] == [0, 2_500_000]
    assert hub.bytes_served("model.gguf") == SIZE


def test_huggingface_hub_itself_accepts_the_local_hub(
    hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The server is faithful enough for huggingface_hub's own downloader (keeps the fixture honest)."""
    from huggingface_hub import hf_hub_download
    from tqdm import tqdm

    monkeypatch.setattr(tqdm, "monitor_interval", 0)  # no tqdm monitor thread left behind

    got = hf_hub_download(
        REPO, "mmproj.gguf", endpoint=hub.endpoint, cache_dir=tmp_path / "hf", token=False
    )
    data = Path(got).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hub.sha256(REPO, "mmproj.gguf")


def test_cdn_redirect_like_huggingface_co_keeps_the_token_on_the_hub(
    local_hub: LocalHub, tmp_path: Path  # noqa: F811
):
    """huggingface.co answers `resolve` with a 302 to a signed CDN URL: follow it, resume through it,
    and never send the token to the CDN host."""
    src = random_file(tmp_path / "src" / "m.gguf", 3_000_000, seed=9)
    local_hub.add_repo("google/cdn-GGUF", {"m.gguf": src}, gated=True, cdn=True)
    save_token(local_hub.token)
    local_hub.add_fault("m.gguf", drop_after=1_000_000)
    store = make_store(local_hub, tmp_path / "models")
    assert store.download("google/cdn-GGUF", "m.gguf").read_bytes() == src.read_bytes()
    assert [(g.start, g.sent) for g in local_hub.gets("m.gguf")] == [
        (0, 1_000_000), (1_000_000, 2_000_000)
    ]

    header = RemoteRangeFile.from_hub("google/cdn-GGUF", "m.gguf", hub=store.hub)
    header.seek(2_999_990)
    assert header.read() == src.read_bytes()[-10:]

    requests = local_hub.requests()
    to_hub = [r for r in requests if "/resolve/" in r.path]
    to_cdn = [r for r in requests if r.path.startswith("/cdn/")]
    assert to_hub and to_cdn
    assert all(r.authorized for r in to_hub) and not any(r.authorized for r in to_cdn)


def test_position_before_a_stall_is_reported_during_the_stall(hub: LocalHub, tmp_path: Path):
    # A fast burst then a stalled server: the throttled report of the bytes before the stall must
    # arrive while the connection hangs (the welcome pane showed "0 B of …" for the whole stall).
    stall_at, stall_s = 3_000_000, 1.5
    hub.add_fault("model.gguf", stall_after=stall_at, stall_s=stall_s)
    store = make_store(hub, tmp_path / "models", read_timeout_s=10.0)
    seen: list[tuple[float, Progress]] = []
    start = time.monotonic()
    store.download(REPO, "model.gguf", on_progress=lambda p: seen.append((time.monotonic(), p)))
    during = [(t - start, p) for t, p in seen if p.done == stall_at]
    assert during, [(round(t - start, 2), p.done) for t, p in seen]
    t, p = during[0]
    assert t < stall_s and p.bytes_per_s > 0 and p.total == SIZE


@pytest.mark.parametrize("name", ["../outside.gguf", "/tmp/outside.gguf", "a/../../x.gguf", ""])
def test_a_file_name_that_escapes_the_folder_is_refused(hub: LocalHub, tmp_path: Path, name: str):
    from app.core.download import UnsafeNameError

    store = make_store(hub, tmp_path / "models")
    with pytest.raises(UnsafeNameError):
        store.download(REPO, name)
    with pytest.raises(UnsafeNameError):
        store.remove(REPO, name)
    with pytest.raises(UnsafeNameError):
        store.path_for("..", "model.gguf")
    assert hub.gets() == [] and not (tmp_path / "outside.gguf").exists()


def test_remove_never_deletes_outside_the_folder_whatever_the_manifest_says(
    hub: LocalHub, tmp_path: Path
):
    store = make_store(hub, tmp_path / "models")
    store.download(REPO, "model.gguf")
    victim = tmp_path / "victim.gguf"
    victim.write_bytes(b"keep me")
    manifest = tmp_path / "models" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(
        str(store.path_for(REPO, "model.gguf")), str(victim)))
    store.remove(REPO, "model.gguf")
    assert victim.read_bytes() == b"keep me"
    assert store.find(REPO, "model.gguf") is None


def test_a_file_without_a_sha256_etag_is_installed_marked_unverified(
    local_hub: LocalHub, tmp_path: Path  # noqa: F811
):
    local_hub.add_repo("org/plain", {"config.json": b'{"a": 1}', "model.gguf": b"GGUF" * 1000},
                       plain=("config.json",))
    store = make_store(local_hub, tmp_path / "models")
    store.download("org/plain", "config.json")
    store.download("org/plain", "model.gguf")
    plain, lfs = store.find("org/plain", "config.json"), store.find("org/plain", "model.gguf")
    assert plain is not None and not plain.verified
    assert lfs is not None and lfs.verified


@pytest.mark.parametrize(("origin", "location", "keeps"), [
    ("https://hub.example/a", "https://hub.example/b", True),
    ("https://hub.example/a", "http://hub.example/b", False),  # a downgrade on the same host
    ("https://hub.example/a", "https://cdn.example/b", False),
    ("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/b", True),
])
def test_the_token_follows_only_same_host_redirects_that_stay_https(
    origin: str, location: str, keeps: bool
):
    from app.core.download.http_stream import redirect_headers

    headers = {"Authorization": "Bearer t", "Range": "bytes=5-"}
    kept = redirect_headers(origin, location, headers)
    assert ("Authorization" in kept) is keeps and kept["Range"] == "bytes=5-"


def test_models_list_says_unverified(local_hub: LocalHub, tmp_path: Path):  # noqa: F811
    import json
    import os
    import sys

    repo, name = "ggml-org/gemma-4-E2B-it-GGUF", "gemma-4-E2B-it-Q8_0.gguf"
    local_hub.add_repo(repo, {name: b"GGUF" * 1000}, plain=(name,))
    make_store(local_hub, tmp_path / "models").download(repo, name)
    env = dict(os.environ, GEMMA_DESKTOP_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1",
               GEMMA_DESKTOP_MODELS_DIR=str(tmp_path / "models"))
    root = Path(__file__).resolve().parents[2]

    def models_list(*extra: str) -> str:
        done = subprocess.run([sys.executable, "main.py", "models", "list", "--ram-gib", "32",
                               *extra], cwd=root, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = {r["id"]: r for r in json.loads(models_list("--json"))["models"]}
    assert rows["E2B-Q8_0"]["installed"] and rows["E2B-Q8_0"]["unverified"]
    assert not rows["E4B-Q8_0"]["unverified"]
    line = next(x for x in models_list().splitlines() if " E2B-Q8_0 " in x)
    assert "installed (unverified" in line
