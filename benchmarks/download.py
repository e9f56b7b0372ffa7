"""Download speed and GUI smoothness against the local hub (no network needed).

    .venv/bin/python benchmarks/download.py [--mib 256] [--repeat 2]

Rows:
- plain copy: http.client GET streamed to a file in 1 MiB reads: the reference (ratio 1.0);
- app downloader: Downloader.fetch; "last byte on disk" is the transfer (the ratio target), and
  "sha256 verified" adds the wait for the hashing thread, which follows the file as it grows;
- plain copy + inline sha256: what hashing in the download loop would cost;
- hf_hub_download: huggingface_hub's own downloader (no sha256 check), for the design decision;
- sha256 hashing of the file (8 MiB reads, warm page cache);
- the same at a real link speed (--link-mib-s, the server paced), where the network, not
  the CPU, is the bottleneck as in real use;
- GUI-thread stall: a 5 ms QTimer heartbeat on the GUI thread measuring its own lateness while a
  DownloadJob runs (target <= 50 ms).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from app.core.download import (  # noqa: E402
    Downloader,
    HubClient,
    ModelStore,
    Progress,
    sha256_file,
)
from tests.fixtures.hub_server import LocalHub, random_file  # noqa: E402

REPO = "bench/model-GGUF"
NAME = "model.gguf"


def plain_copy(url: str, dest: Path, hash_inline: bool = False) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request("GET", parts.path)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    digest = hashlib.sha256()
    with dest.open("wb") as f:
        while block := resp.read(1 << 20):
            f.write(block)
            if hash_inline:
                digest.update(block)
    conn.close()


def best_of(repeat: int, fn, cleanup) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        cleanup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    cleanup()
    return min(times)


def gui_stall(hub: LocalHub, work: Path) -> tuple[float, float, int]:
    from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QTimer

    from app.services.downloads import DownloadJob

    app = QCoreApplication.instance() or QCoreApplication([])
    store = ModelStore(work / "stall", Downloader(HubClient(hub.endpoint)))
    job = DownloadJob(store, [(REPO, NAME, "main")])
    late: list[float] = []
    clock = QElapsedTimer()
    interval = 5
    timer = QTimer()
    timer.setInterval(interval)
    state = {"last": 0}

    def beat() -> None:
        now = clock.elapsed()
        late.append(max(0, now - state["last"] - interval))
        state["last"] = now

    timer.timeout.connect(beat)
    loop = QEventLoop()
    job.sig_finished.connect(lambda _p: loop.quit())
    job.sig_failed.connect(lambda m: (print("failed:", m), loop.quit()))
    clock.start()
    timer.start()
    job.start()
    loop.exec()
    timer.stop()
    job.wait(5)
    del app
    late.sort()
    p99 = late[int(len(late) * 0.99)] if late else 0.0
    return float(max(late or [0])), float(p99), len(late)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--link-mib-s", type=float, default=110.0,
                        help="also compare at this link speed (110 MiB/s ~ gigabit fibre)")
    args = parser.parse_args()
    size = args.mib << 20
    mib = size / (1 << 20)

    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        work = Path(tmp)
        src = random_file(work / "src" / NAME, size, seed=42)
        with LocalHub(work / "hub") as hub:
            hub.add_repo(REPO, {NAME: src})
            client = HubClient(hub.endpoint, offline=False)
            url = client.file_url(REPO, NAME)
            out = work / "out"
            out.mkdir()

            def clean() -> None:
                for p in out.rglob("*"):
                    if p.is_file():
                        p.unlink()

            downloader = Downloader(client)
            transfer: list[float] = []

            def app_fetch() -> None:
                start = time.perf_counter()

                def on_progress(p: Progress) -> None:
                    if p.done == p.total:
                        transfer.append(time.perf_counter() - start)

                downloader.fetch(REPO, NAME, out / "app.bin", on_progress=on_progress)

            def hf() -> None:
                from huggingface_hub import hf_hub_download

                hf_hub_download(REPO, NAME, endpoint=hub.endpoint, local_dir=out / "hf", token=False)

            # Interleaved rounds, best of each: the machine is shared and noisy, and interleaving
            # gives every method the same chances.
            methods = {
                "plain": lambda: plain_copy(url, out / "plain.bin"),
                "app": app_fetch,
                "inline": lambda: plain_copy(url, out / "plain.bin", hash_inline=True),
                "hf": hf,
            }
            best = {name: float("inf") for name in methods}
            for _ in range(args.repeat):
                for name, fn in methods.items():
                    best[name] = min(best[name], best_of(1, fn, clean))
            t_plain, t_app, t_inline, t_hf = best["plain"], best["app"], best["inline"], best["hf"]
            t_transfer = min(transfer)
            # The same comparison over a link of a real speed: loopback runs at memory speed, so
            # there the hashing thread competes with the server for the CPU; on a real link the
            # network is the bottleneck and hashing rides along.
            hub.rate_limit = args.link_mib_s * (1 << 20)
            link = {"plain": float("inf"), "app": float("inf")}
            for _ in range(max(1, args.repeat - 1)):
                link["plain"] = min(link["plain"], best_of(1, methods["plain"], clean))
                link["app"] = min(link["app"], best_of(1, app_fetch, clean))
            hub.rate_limit = None
            sha256_file(src)  # warm the page cache
            t_hash = best_of(args.repeat, lambda: sha256_file(src), lambda: None)
            stall_max, stall_p99, beats = gui_stall(hub, work)

    rows = [
        ("plain streaming copy (reference)", f"{mib / t_plain:8.0f} MiB/s", "1.00"),
        ("app downloader: last byte on disk", f"{mib / t_transfer:8.0f} MiB/s",
         f"{t_plain / t_transfer:.2f}"),
        ("app downloader: sha256 verified", f"{mib / t_app:8.0f} MiB/s", f"{t_plain / t_app:.2f}"),
        ("plain copy + inline sha256", f"{mib / t_inline:8.0f} MiB/s", f"{t_plain / t_inline:.2f}"),
        ("hf_hub_download (no sha256)", f"{mib / t_hf:8.0f} MiB/s", f"{t_plain / t_hf:.2f}"),
        (f"link {args.link_mib_s:.0f} MiB/s: plain copy", f"{mib / link['plain']:8.0f} MiB/s", "1.00"),
        (f"link {args.link_mib_s:.0f} MiB/s: app, sha256 verified", f"{mib / link['app']:8.0f} MiB/s",
         f"{link['plain'] / link['app']:.2f}"),
        ("sha256 hashing (8 MiB reads)", f"{mib / t_hash:8.0f} MiB/s", ""),
        ("GUI stall during download, max", f"{stall_max:8.0f} ms", "target <= 50"),
        ("GUI stall during download, p99", f"{stall_p99:8.0f} ms", f"{beats} beats"),
    ]
    print(f"\nDownload benchmark: {mib:.0f} MiB file, local hub on 127.0.0.1, best of {args.repeat}\n")
    print(f"{'measure':36} {'value':>14}  ratio/notes")
    print("-" * 66)
    for name, value, note in rows:
        print(f"{name:36} {value:>14}  {note}")
    verdict = "PASS" if link["plain"] / link["app"] >= 0.9 and stall_max <= 50 else "CHECK"
    print(f"\nthroughput ratio (verified, real link) target >= 0.90, stall target <= 50 ms: {verdict}")


if __name__ == "__main__":
    main()
