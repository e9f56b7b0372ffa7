"""API server speed: `main.py serve` and `python -m llama_cpp.server` beside raw llama.cpp.

    .venv/bin/python benchmarks/server.py [--model PATH] [--threads 2] [--tokens 48] [--clients 1,2,4,8]
                                          [--rounds 3]

Same model, threads, context and raw prompt (/v1/completions, greedy) for all three.
Raw llama.cpp: its C API in this process, N sequences decoded in one batch (one llama_decode per
step for all N), greedy. Servers: N concurrent streaming HTTP clients; `main.py serve` runs with
`--parallel` = the largest N (continuous batching, --ctx per slot), llama_cpp.server as it is
(it answers one request at a time). Reported: single-client TTFT and decode tok/s; aggregate tok/s
at each N = all tokens / wall time from the first request to the last token (prompt processing
included, for raw llama.cpp too).

The machine may be shared: the three run interleaved (every round measures raw, serve and
llama_cpp.server at each N in turn), and each cell is the median over the rounds, with the spread
(max/min - 1) of every row printed below the table as the noise.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GEMMA_DESKTOP_HOME", tempfile.mkdtemp(prefix="gemma-bench-"))

from tests.fixtures.openai_servers import (  # noqa: E402
    free_port,
    gemma_serve,
    llama_cpp_server,
    running,
)

PROMPT = (
    "Write a detailed explanation of how a bicycle's gears work, covering chainrings, cassettes, "
    "derailleurs and how a rider should choose a gear when climbing a steep hill.\n\n"
    "A bicycle's gears are"
)


FAILED: list[str] = []
MODEL_ID = [""]  # the loaded file's name: what `main.py serve` lists


class RawBatched:
    """llama.cpp's C API: N sequences, one batch per step, greedy; the reference."""

    def __init__(self, model_path: str, threads: int, n_ctx: int, n_seq: int) -> None:
        import llama_cpp as lc

        from app.core.engine.backends import load_backends

        self.lc = lc
        load_backends()  # BACKEND_DL builds: the same CPU variant and GPU modules as the app
        lc.llama_backend_init()
        self._quiet = lc.llama_log_callback(lambda *_: None)
        lc.llama_log_set(self._quiet, None)
        self.model = lc.llama_model_load_from_file(model_path.encode(), lc.llama_model_default_params())
        cp = lc.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx * n_seq, 512, 512, n_seq
        cp.n_threads = cp.n_threads_batch = threads
        if hasattr(cp, "kv_unified"):
            cp.kv_unified = True
        cp.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model, cp)
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.batch = lc.llama_batch_init(512 * n_seq, 0, n_seq)

    def _fill(self, items: list[tuple[int, int, int, bool]]) -> None:
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
            b.seq_id[i][0], b.logits[i] = seq, logits
        b.n_tokens = len(items)

    def run(self, n_seq: int, prompt: str, n_tokens: int) -> tuple[float, float, float]:
        """(ttft_ms, decode tok/s of all sequences, aggregate tok/s incl. prompts)."""
        lc = self.lc
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        data = prompt.encode()
        arr = (lc.llama_token * (len(data) + 16))()
        n = lc.llama_tokenize(self.vocab, data, len(data), arr, len(data) + 16, True, True)
        sampler = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        lc.llama_sampler_chain_add(sampler, lc.llama_sampler_init_greedy())
        buf = ctypes.create_string_buffer(64)
        t0 = time.perf_counter()
        self._fill([(arr[i], i, s, i == n - 1) for s in range(n_seq) for i in range(n)])
        assert lc.llama_decode(self.ctx, self.batch) == 0
        toks = [lc.llama_sampler_sample(sampler, self.ctx, s * n + n - 1) for s in range(n_seq)]
        t_first = time.perf_counter()
        produced = n_seq
        for step in range(n_tokens - 1):
            self._fill([(toks[s], n + step, s, True) for s in range(n_seq)])
            assert lc.llama_decode(self.ctx, self.batch) == 0
            toks = [lc.llama_sampler_sample(sampler, self.ctx, s) for s in range(n_seq)]
            for t in toks:
                lc.llama_token_to_piece(self.vocab, t, buf, 64, 0, True)
            produced += n_seq
        t_end = time.perf_counter()
        lc.llama_sampler_free(sampler)
        return ((t_first - t0) * 1000, (produced - n_seq) / (t_end - t_first),
                produced / (t_end - t0))


def _stream(url: str, n_tokens: int, out: list[tuple[float, float, float, int]]) -> None:
    body = {"model": MODEL_ID[0], "prompt": PROMPT, "max_tokens": n_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first: float | None = None
    chunks, usage = 0, 0
    try:
        with httpx.Client(timeout=600) as client, \
                client.stream("POST", url + "/v1/completions", json=body) as r:
            for line in r.iter_lines():
                if not line.startswith("data: {"):
                    continue
                data = json.loads(line[6:])
                if data.get("usage"):
                    usage = int(data["usage"]["completion_tokens"])
                for choice in data.get("choices") or []:
                    if choice.get("text"):
                        chunks += 1
                        first = first or time.perf_counter()
    except httpx.HTTPError:
        FAILED.append(url)  # a dropped stream's tokens are not counted
        chunks = usage = 0
    out.append((t0, first or time.perf_counter(), time.perf_counter(), usage or chunks))


def measure(url: str, clients: int, n_tokens: int) -> tuple[float, float, float]:
    """(ttft_ms, single decode tok/s, aggregate tok/s) for `clients` concurrent streams."""
    results: list[tuple[float, float, float, int]] = []
    threads = [threading.Thread(target=_stream, args=(url, n_tokens, results))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    start = min(r[0] for r in results)
    end = max(r[2] for r in results)
    t0, first, last, n = results[0]
    decode = (n - 1) / (last - first) if last > first and n > 1 else 0.0
    return (first - t0) * 1000, decode, sum(r[3] for r in results) / (end - start)


def _median(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    ttft, decode, agg = zip(*runs, strict=True)
    return statistics.median(ttft), statistics.median(decode), statistics.median(agg)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--ctx", type=int, default=1024, help="context per sequence")
    p.add_argument("--clients", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.model is None:
        from tests.fixtures.models import gemma3_270m_path

        args.model = gemma3_270m_path()
    MODEL_ID[0] = args.model.name
    counts = [int(c) for c in args.clients.split(",")]
    most = max(counts)
    samples: dict[str, dict[int, list[tuple[float, float, float]]]] = {}

    raw = RawBatched(str(args.model), args.threads, args.ctx, most)
    raw.run(1, PROMPT, 4)  # warm-up
    logs = Path(tempfile.mkdtemp(prefix="server-bench-"))
    servers = {
        "main.py serve": lambda port: gemma_serve(
            args.model, port, "--threads", str(args.threads), "--ctx", str(args.ctx * most),
            "--parallel", str(most)),
        "llama_cpp.server": lambda port: llama_cpp_server(
            args.model, port, logs / "llama.log", args.ctx,
            ["--n_threads", str(args.threads), "--interrupt_requests", "False"]),  # queue, not drop
    }
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for name, command in servers.items():
            port = free_port()
            ready = "/health" if name == "main.py serve" else "/v1/models"
            stack.enter_context(running(command(port), ready, port, logs / f"{port}.log"))
            urls[name] = f"http://127.0.0.1:{port}"
            measure(urls[name], 1, 4)  # warm-up
        def server_run(url: str) -> Callable[[int], tuple[float, float, float]]:
            return lambda n: measure(url, n, args.tokens)

        runners: dict[str, Callable[[int], tuple[float, float, float]]] = {
            "raw llama.cpp (batched)": lambda n: raw.run(n, PROMPT, args.tokens),
            **{name: server_run(url) for name, url in urls.items()},
        }
        for _ in range(args.rounds):
            for n in counts:
                for name, run in runners.items():
                    samples.setdefault(name, {}).setdefault(n, []).append(run(n))
    rows = {name: {n: _median(v) for n, v in data.items()} for name, data in samples.items()}

    ref = rows["raw llama.cpp (batched)"]
    print(f"\nmodel {args.model.name}, {args.threads} threads, {args.tokens} tokens a client, "
          f"greedy, /v1/completions streamed; serve --parallel {most}; median of {args.rounds} "
          "interleaved rounds\n")
    print(f"{'':26} {'TTFT ms':>8} {'1-client tok/s':>15}  " +
          "  ".join(f"{'agg@' + str(n):>8}" for n in counts))
    for name, data in rows.items():
        ttft, single, _ = data[counts[0]]
        aggs = "  ".join(f"{data[n][2]:8.1f}" for n in counts)
        print(f"{name:26} {ttft:8.0f} {single:15.1f}  {aggs}")
    for name in servers:
        ratio = "  ".join(f"{rows[name][n][2] / ref[n][2]:8.2f}" for n in counts)
        single = rows[name][counts[0]][1] / ref[counts[0]][1]
        print(f"{name + ' / raw':26} {'':8} {single:15.2f}  {ratio}")
    print("\nnoise, spread of aggregate tok/s over the rounds (max/min - 1):")
    for name, runs in samples.items():
        spread = "  ".join(f"{max(r[2] for r in v) / max(1e-9, min(r[2] for r in v)) - 1:8.0%}"
                           for v in runs.values())
        print(f"{name:26} {'':8} {'':15}  {spread}")
    if FAILED:
        print(f"\nstreams that failed (connection dropped by the server): {len(FAILED)}")
    print(f"\nmedian raw decode tok/s over N: {statistics.median(r[1] for r in ref.values()):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
